"""The upscaler kind's training: a face at S px -> the same face at k*S px.

Pairs come from one prepared cache at the output's size: each image and its ``shrink``
copy (``facegan.upscaling``: Pillow's Lanczos, the resize ``facegan prepare`` uses),
made once when training starts and mirrored alike. A step trains on a random crop of
each pair (``model.srnet.patch``, the low-res side; 0 = whole images), drawn from the
shared random state, so a resumed run crops as an uninterrupted one would.

This is the PSNR-oriented stage of the super-resolution papers (SRResNet, ESRGAN's
first stage): the upscaler minimises the mean absolute pixel error (L1) to the real
photo. Its discriminator is built and checkpointed, for the adversarial stage that
starts from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facegan import config as cfg
from facegan import images as imaging
from facegan import models, upscaling
from facegan.conditions import Conditions
from facegan.data.loader import PairLoader
from facegan.errors import FaceganError
from facegan.models.family import Family
from facegan.train import distributed, networks, speed
from facegan.train.networks import TwoNetworks
from facegan.train.distributed import ALONE, World
from facegan.train.ema import MovingAverage

GRID_FACES = 8  # rows of the sample grid: low-res | bicubic | model | real


@dataclass
class UpscalerTraining(TwoNetworks):
    config: cfg.Config
    device: torch.device
    fast: speed.SpeedPlan
    family: Family
    generator: torch.nn.Module  # the upscaler
    discriminator: torch.nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    g_train: torch.nn.Module
    loader: PairLoader
    average: MovingAverage | None
    grid_pairs: tuple[np.ndarray, np.ndarray]  # (low-res, real) faces the grid shows every time
    world: World = ALONE
    conditions: Conditions | None = None  # upscalers take no labels
    steps_taken: int = 0

    def crops(self, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One random patch of each pair, the same place in both (low-res side ``patch``)."""
        own = self.config.model.family_settings
        patch, k = own.patch, own.scale
        side = low.shape[-1]
        if not patch or patch >= side:
            return low, high
        corner = torch.randint(0, side - patch + 1, (2,), device=self.device).tolist()
        y, x = corner
        return low[..., y : y + patch, x : x + patch], high[..., y * k : (y + patch) * k, x * k : (x + patch) * k]

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        with distributed.own_randomness(self.world, self.config.train.seed, self.steps_taken, self.device):
            return self._step(*batch)

    def _step(self, low: torch.Tensor, high: torch.Tensor) -> dict[str, torch.Tensor]:
        self.steps_taken += 1
        low, high = self.crops(low, high)
        with self.fast.autocast(self.device):
            made = self.g_train(low)
        loss = F.l1_loss(made.float(), high)
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.g_optimizer.step()
        if self.average is not None:
            batch = self.config.train.batch_size
            self.average.update(self.generator, batch, self.steps_taken * batch)
        with torch.no_grad():  # pixels in [-1, 1]: a peak-to-peak of 2
            mse = F.mse_loss(made.detach().float().clamp(-1, 1), high)
        return {"l1": loss.detach(), "psnr_train": 10 * torch.log10(4.0 / mse.clamp_min(1e-12))}

    @property
    def sampler(self) -> torch.nn.Module:
        return self.average.module if self.average is not None else self.generator

    def log_figures(self) -> dict[str, float]:
        return {}

    def grid(self, path: Path) -> Path:
        """Rows of the same faces every time: low-res (enlarged, nearest) | bicubic | this
        upscaler | the real photo."""
        return write_comparison(self.sampler, *self.grid_pairs, self.device, path)


def write_comparison(upscaler: torch.nn.Module, low: np.ndarray, real: np.ndarray, device: torch.device,
                     path: Path) -> Path:
    side = real.shape[1]
    columns = [upscaling.resized(low, side, "nearest"), upscaling.resized(low, side, "bicubic"),
               upscaling.upscale(upscaler, low, device), real]
    rows = np.stack(columns, axis=1).reshape(-1, side, side, 3)
    imaging.save_png(imaging.grid(rows, columns=len(columns)), path)
    return path


def set_up(config: cfg.Config, device: torch.device, images: np.ndarray,
           labels: np.ndarray | None = None, world: World = ALONE) -> UpscalerTraining:
    m, t = config.model, config.train
    family = models.family_of(m)
    if config.eval.eval_every:
        raise FaceganError("evaluations during training (eval.eval_every) measure generators; an upscaler is "
                           "measured on held-out photos by benchmarks/upscale_quality.py")
    distributed.check_batch(world, t.batch_size)
    scale = m.family_settings.scale
    fast = speed.resolve(config.speed, device, images.nbytes, model=m)
    speed.apply_globals(fast)
    torch.manual_seed(t.seed)
    generator, discriminator = (network.to(device) for network in models.build(m))
    optimizers = networks.optimisers(generator, discriminator, t, fast, world)
    low = upscaling.shrink(images, scale)
    shown = np.random.default_rng(t.seed).choice(len(images), min(GRID_FACES, len(images)), replace=False)
    loader = PairLoader(low, images, t.batch_size, t.seed, device, generator.output_range, config.data.mirror,
                        on_device=fast.data_on_device, shard=(world.rank, world.size))
    return UpscalerTraining(config, device, fast, family, generator, discriminator, *optimizers,
                            speed.prepare_network(generator, fast), loader,
                            MovingAverage(generator, t.ema_kimg) if t.ema_kimg > 0 else None,
                            (low[np.sort(shown)], images[np.sort(shown)]), world, None)

