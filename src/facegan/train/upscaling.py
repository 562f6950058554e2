"""The upscaler kind's training: a face at S px -> the same face at k*S px.

Pairs come from one prepared cache at the output's size: each image and its ``shrink``
copy (``facegan.upscaling``: Pillow's Lanczos, the resize ``facegan prepare`` uses),
made once when training starts and mirrored alike. A step trains on a random crop of
each pair (``model.srnet.patch``, the low-res side; 0 = whole images), drawn from the
shared random state, so a resumed run crops as an uninterrupted one would.

A step weighs three losses by the family's settings (``[model.srnet]``), as ESRGAN
does: ``pixel``, the mean absolute error (L1) to the real photo; ``perceptual``, L1
between the frozen EfficientNet-Lite0's feature maps of the upscaled and the real crop;
``adversarial``, the relativistic average loss against the patch critic, which then
takes its own step on the same crops. ``sr128`` is the PSNR-oriented first stage (pixel
loss alone; its critic is built and checkpointed but never trained), ``sr128-gan`` the
second, started from it (``train.start_from``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facegan import config as cfg
from facegan import images as imaging
from facegan import models, upscaling
from facegan.models import efficientnet
from facegan.conditions import Conditions
from facegan.data.loader import PairLoader
from facegan.models.family import Family
from facegan.train import distributed, networks, speed
from facegan.train.networks import TwoNetworks
from facegan.train.distributed import ALONE, World
from facegan.train.ema import MovingAverage

GRID_FACES = 8  # rows of the sample grid: low-res | bicubic | model | real
PERCEPTUAL_MAPS = 3  # EfficientNet-Lite0's feature maps the perceptual loss compares: 1/4, 1/8 and 1/16 of the side


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
    d_train: torch.nn.Module  # the critic as the step runs it
    features: torch.nn.Module | None  # the frozen feature network of the perceptual loss, if weighted
    grid_pairs: tuple[np.ndarray, np.ndarray]  # (low-res, real) faces the grid shows every time
    world: World = ALONE
    conditions: Conditions | None = None  # upscalers take no labels
    steps_taken: int = 0
    notes: list[str] = field(default_factory=list)

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
        """The upscaler's step on its losses (pixel, perceptual, adversarial), then, in the
        adversarial stage, the critic's step on the same upscaled crops."""
        self.steps_taken += 1
        own = self.config.model.family_settings
        low, high = self.crops(low, high)
        figures: dict[str, torch.Tensor] = {}
        with self.fast.autocast(self.device):
            made = self.g_train(low)
        l1 = F.l1_loss(made.float(), high)
        loss = own.pixel * l1
        if self.features is not None:
            figures["perceptual"] = perceptual_distance(self.features, made, high, self.fast, self.device)
            loss = loss + own.perceptual * figures["perceptual"]
        if own.adversarial:
            self.discriminator.requires_grad_(False)  # the upscaler's step needs gradients through D, not for it
            with self.fast.autocast(self.device):
                real, fake = self.d_train(high).float(), self.d_train(made).float()
            figures["loss_g"] = relativistic_loss(fake, real.detach())
            loss = loss + own.adversarial * figures["loss_g"]
            self.discriminator.requires_grad_(True)
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.g_optimizer.step()
        if own.adversarial:
            figures.update(self._critic_step(made.detach(), high))
        if self.average is not None:
            batch = self.config.train.batch_size
            self.average.update(self.generator, batch, self.steps_taken * batch)
        with torch.no_grad():  # pixels in [-1, 1]: a peak-to-peak of 2
            mse = F.mse_loss(made.detach().float().clamp(-1, 1), high)
        return {"l1": l1.detach(), "psnr_train": 10 * torch.log10(4.0 / mse.clamp_min(1e-12)),
                **{k: v.detach() for k, v in figures.items()}}

    def _critic_step(self, made: torch.Tensor, high: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.fast.autocast(self.device):
            real, fake = self.d_train(high).float(), self.d_train(made).float()
        loss = relativistic_loss(real, fake)
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        with torch.no_grad():  # D_Ra: how much more real than the average fake a real patch looks, and back
            d_real = torch.sigmoid(real - fake.mean(0, keepdim=True)).mean()
            d_fake = torch.sigmoid(fake - real.mean(0, keepdim=True)).mean()
        return {"loss_d": loss, "d_real": d_real, "d_fake": d_fake}

    @property
    def sampler(self) -> torch.nn.Module:
        return self.average.module if self.average is not None else self.generator

    def log_figures(self) -> dict[str, float]:
        return {}

    def grid(self, path: Path) -> Path:
        """Rows of the same faces every time: low-res (enlarged, nearest) | bicubic | this
        upscaler | the real photo."""
        return write_comparison(self.sampler, *self.grid_pairs, self.device, path)


def relativistic_loss(ahead: torch.Tensor, behind: torch.Tensor) -> torch.Tensor:
    """The relativistic average loss (Jolicoeur-Martineau 2018; ESRGAN) of critic logits
    (N, positions): -log D_Ra(ahead, behind) - log(1 - D_Ra(behind, ahead)), where
    D_Ra(x, y) = sigmoid(C(x) - mean C(y)) over the batch, per patch position. The
    critic minimises it with (real, fake): real patches should look more real than the
    average fake one; the upscaler with (fake, real)."""
    return (F.softplus(-(ahead - behind.mean(0, keepdim=True))).mean()
            + F.softplus(behind - ahead.mean(0, keepdim=True)).mean())


def perceptual_distance(features: torch.nn.Module, made: torch.Tensor, real: torch.Tensor,
                        fast: speed.SpeedPlan, device: torch.device) -> torch.Tensor:
    """Mean absolute difference of EfficientNet-Lite0's feature maps at 1/4, 1/8 and 1/16
    of the side (PERCEPTUAL_MAPS), summed: texture and parts, where pixel error sees only
    their average. These maps are the blocks' linear outputs, before any activation, which
    ESRGAN found keeps more of the signal than features after a ReLU. On a CPU the
    network runs in fp32 even where bf16 autocast is on: its depthwise convolutions run
    1.4-1.7x slower in bf16 (``benchmarks/upscaler_parts.py``)."""
    precision = fast.autocast(device) if device.type == "cuda" else contextlib.nullcontext()
    with precision:
        ours = features.features(made)
        with torch.no_grad():
            theirs = features.features(real)
    return sum(F.l1_loss(a.float(), b.float()) for a, b in list(zip(ours, theirs))[:PERCEPTUAL_MAPS])


def write_comparison(upscaler: torch.nn.Module, low: np.ndarray, real: np.ndarray, device: torch.device,
                     path: Path) -> Path:
    side = real.shape[1]
    imaging.save_png(imaging.columns([upscaling.resized(low, side, "nearest"), upscaling.resized(low, side, "bicubic"),
                                      upscaling.upscale(upscaler, low, device), real]), path)
    return path


def set_up(config: cfg.Config, device: torch.device, images: np.ndarray,
           labels: np.ndarray | None = None, world: World = ALONE) -> UpscalerTraining:
    m, t = config.model, config.train
    family = models.family_of(m)
    networks.measured_elsewhere(config, "an upscaler", "benchmarks/upscale_quality.py")
    fast, generator, discriminator, optimizers = networks.seeded_pair(config, device, images.nbytes, world)
    low = upscaling.shrink(images, m.family_settings.scale)
    shown = np.random.default_rng(t.seed).choice(len(images), min(GRID_FACES, len(images)), replace=False)
    features = None
    if m.family_settings.perceptual:
        features = efficientnet.pretrained().to(device)
        if fast.channels_last:
            features = features.to(memory_format=torch.channels_last)
    loader = PairLoader(low, images, t.batch_size, t.seed, device, generator.output_range, config.data.mirror,
                        on_device=fast.data_on_device, shard=(world.rank, world.size))
    return UpscalerTraining(config, device, fast, family, generator, discriminator, *optimizers,
                            speed.prepare_network(generator, fast), loader,
                            MovingAverage(generator, t.ema_kimg) if t.ema_kimg > 0 else None,
                            speed.prepare_network(discriminator, fast), features,
                            (low[np.sort(shown)], images[np.sort(shown)]), world, None)

