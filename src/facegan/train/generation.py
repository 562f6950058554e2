"""The generator kind's training: z (and labels) -> face, against a discriminator.

``set_up`` builds everything one training step needs (networks, optimisers, loader,
objective, moving average), the same way for training, benchmarks and tests; the
``GeneratorTraining`` it returns is what the trainer's session drives (the ``Training``
protocol of ``facegan.train.kinds``): a step per batch, the state a checkpoint holds,
the grid each epoch draws, the figures the family adds to the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facegan import config as cfg
from facegan import images as imaging
from facegan import models, sample
from facegan.conditions import Conditions, attribute_names
from facegan.data.loader import BatchLoader
from facegan.models.family import Family
from facegan.train import augment, distributed, networks, speed
from facegan.train.networks import TwoNetworks
from facegan.train.distributed import ALONE, World
from facegan.train.ema import MovingAverage
from facegan.train.steps import STEPS, Objective


@dataclass
class GeneratorTraining(TwoNetworks):
    """Everything one training step of a generator needs."""

    config: cfg.Config
    device: torch.device
    fast: speed.SpeedPlan
    family: Family
    generator: torch.nn.Module  # the networks themselves: optimisers and checkpoints use these
    discriminator: torch.nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    g_train: torch.nn.Module  # what the step calls: the networks, or their compiled wrappers
    d_train: torch.nn.Module
    loader: BatchLoader
    objective: Objective
    average: MovingAverage | None  # the generator's moving average, when train.ema_kimg > 0
    world: World = ALONE  # the processes training together, and this one's place among them
    conditions: Conditions | None = None  # a conditional model's attributes and their joint distribution
    steps_taken: int = 0  # set on resume: lazy R1 and the average's ramp-up count steps
    notes: list[str] = field(default_factory=list)
    _grid: tuple[torch.Tensor, torch.Tensor | None] | None = field(default=None, repr=False)

    def latents(self) -> torch.Tensor:
        """This process's latents for the next step: the whole batch's, drawn alike on
        every rank (so the shared random state advances alike), then its slice of them."""
        t, world = self.config.train, self.world
        z = torch.randn(t.batch_size, self.config.model.z_dim, device=self.device)
        share = t.batch_size // world.size
        return z[world.rank * share : (world.rank + 1) * share] if world.several else z

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        """One step on a batch of the loader: real images and their labels (or None)."""
        real, labels = batch
        return self.step(real, self.latents(), labels)

    def step(self, real: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One training step on a real batch (and its labels, for a conditional model)."""
        with distributed.own_randomness(self.world, self.config.train.seed, self.steps_taken, self.device):
            return self._step(real, z, labels)

    def _step(self, real: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        self.steps_taken += 1
        batch = self.config.train.batch_size
        growth = self.family.growth
        if growth is not None:
            for network in [self.generator, self.discriminator] + ([self.average.module] if self.average else []):
                growth.grow_to(network, (self.steps_taken - 1) * batch)
        if self.fast.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        figures = STEPS[self.config.train.step](self.g_train, self.d_train, self.g_optimizer, self.d_optimizer,
                                                real, z, self.objective, self.steps_taken,
                                                lambda: self.fast.autocast(self.device), labels)
        if self.average is not None:
            self.average.update(self.generator, batch, self.steps_taken * batch)
        return figures

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that samples, evaluations and checkpoints' users see: the average if kept."""
        return self.average.module if self.average is not None else self.generator

    def log_figures(self) -> dict[str, float]:
        """What the family adds to a row of the training log (a growing model's stage)."""
        return self.family.growth.figures(self.generator) if self.family.growth is not None else {}

    def grid(self, path: Path) -> Path:
        """The sample grid: the same latents (and labels) every time, from the run's seed."""
        t = self.config.train
        if self._grid is None:
            labels = (None if self.conditions is None
                      else torch.from_numpy(self.conditions.sample(t.sample_count, t.seed)).to(self.device))
            self._grid = sample.latents(t.sample_count, self.config.model.z_dim, t.seed).to(self.device), labels
        latents, labels = self._grid
        return write_samples(self.sampler, latents, path, labels)


def twin_shares(t: cfg.TrainConfig, m: cfg.ModelConfig) -> float | tuple[float, ...]:
    """The share of the twin's error G's attribute term subtracts: ``attribute_twin`` for
    every attribute, or, with ``twin_attributes``, for those and 0 for the others."""
    if not t.twin_attributes:
        return t.attribute_twin
    twinned = set(attribute_names(t.twin_attributes, "train.twin_attributes"))
    return tuple(t.attribute_twin if name in twinned else 0.0 for name in attribute_names(m.attributes))


def set_up(config: cfg.Config, device: torch.device, images: np.ndarray,
           labels: np.ndarray | None = None, world: World = ALONE) -> GeneratorTraining:
    """Resolve the [speed] settings, then build (seeded) networks, optimisers and the loader
    (of ``images``, and of their ``labels`` for a conditional model); with several
    processes, this one's share of each batch and optimisers that average gradients."""
    m, t = config.model, config.train
    family = models.family_of(m)
    distributed.check_batch(world, t.batch_size)
    fast = speed.resolve(config.speed, device, images.nbytes, model=m)
    speed.apply_globals(fast)
    torch.manual_seed(t.seed)
    generator, discriminator = (distributed.share_batch_norm(network, world, device).to(device)
                                for network in models.build(m, attribute_head=t.attribute_heads))
    optimizers = networks.optimisers(generator, discriminator, t, fast, world)
    growth, mapping = family.growth, family.mapping
    objective = Objective(
        t.loss, t.r1_gamma, t.r1_every, augment.policies(t.augment), generator.output_range, t.attribute_loss,
        t.pl_weight, mode_seeking=t.mode_seeking, attribute_twin=twin_shares(t, m),
        r1_scale=(lambda: growth.gradient_scale(discriminator)) if growth is not None else Objective.r1_scale,
        path_length_penalty=(lambda z: mapping.path_length_penalty(generator, z)) if mapping is not None else None)
    average = None
    if t.ema_kimg > 0:
        limit = growth.average_half_life_limit if growth is not None else None
        average = MovingAverage(generator, t.ema_kimg, limit)
    names = attribute_names(m.attributes)
    return GeneratorTraining(
        config, device, fast, family, generator, discriminator, *optimizers,
        speed.prepare_network(generator, fast), speed.prepare_network(discriminator, fast),
        BatchLoader(images, t.batch_size, t.seed, device, generator.output_range, config.data.mirror,
                    channels_last=fast.channels_last, on_device=fast.data_on_device, labels=labels,
                    shard=(world.rank, world.size)),
        objective, average, world,
        Conditions.of(names, labels) if names and labels is not None else None,
    )


def write_samples(generator: torch.nn.Module, latents: torch.Tensor, path: Path,
                  labels: torch.Tensor | None = None) -> Path:
    with models.evaluating(generator):
        pictures = imaging.to_uint8(generator(latents, labels), generator.output_range)
    imaging.save_png(imaging.grid(pictures), path)
    return path
