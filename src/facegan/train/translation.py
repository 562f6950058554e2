"""The translator kind's training: a face of domain A <-> domain B, without pairs.

The domains come from one prepared cache's labels (``model.cycle.domains``: the faces
without and with an attribute, or with one attribute and not another), balanced on
``model.cycle.balance``'s attributes if it names any. Each step takes a
batch of each domain, drawn apart (``DomainLoader``; an epoch is as many batches as the
smaller domain gives), and trains as CycleGAN does:

- both generators, on least-squares adversarial losses against the other domain's
  discriminator, the cycle loss (A -> B -> A and B -> A -> B, L1, weight ``cycle``) and
  the identity loss (a face already in the target domain should pass unchanged, L1,
  weight ``identity`` x ``cycle``);
- both discriminators, on real faces of their domain against fakes drawn half from a
  pool of past fakes (``pool``), each loss halved;
- with ``smooth`` > 0, each translation's change to its photo (translation - photo) is
  penalised by its total variation, at weight ``smooth`` (a grainy change costs, a smooth
  one little);
- with ``keep`` > 0, an attribute critic (``Critics.reader``) learns the labels of real
  faces of both domains (their domain attribute(s), then the balance attributes, BCE),
  and each generator's translation is asked, at weight ``keep``, to read as the target
  domain with the source face's own balance attributes (StarGAN's classification loss);
- both learning rates constant for the first ``decay_from`` of the run's steps, then
  falling linearly to 0 at its last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from facegan import config as cfg
from facegan import images as imaging
from facegan import editing, models
from facegan.conditions import Conditions
from facegan.data.loader import BatchLoader
from facegan.errors import FaceganError
from facegan.models import cycle
from facegan.models.family import Family
from facegan.train import augment, distributed, networks, speed
from facegan.train.distributed import ALONE, World
from facegan.train.ema import MovingAverage
from facegan.train.networks import TwoNetworks

GRID_FACES = 4  # faces of each domain in the sample grid: input | translated | translated back


class DomainLoader:
    """A batch of each domain per step, from two loaders of their own orders, with their
    labels (the domain attribute(s), then the balance attributes)."""

    def __init__(self, a: BatchLoader, b: BatchLoader):
        self.a, self.b = a, b

    @property
    def steps_per_epoch(self) -> int:
        return min(self.a.steps_per_epoch, self.b.steps_per_epoch)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
        for (a, labels_a), (b, labels_b) in zip(self.a.epoch(epoch, start), self.b.epoch(epoch, start)):
            yield a, b, labels_a, labels_b


@dataclass
class TranslatorTraining(TwoNetworks):
    config: cfg.Config
    device: torch.device
    fast: speed.SpeedPlan
    family: Family
    generator: cycle.Translator  # both directions
    discriminator: cycle.Critics  # both discriminators and their pools
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    to_b: torch.nn.Module  # the networks as the step calls them
    to_a: torch.nn.Module
    judge_a: torch.nn.Module
    judge_b: torch.nn.Module
    reader: torch.nn.Module | None  # the attribute critic as the step calls it (model.cycle.keep)
    loader: DomainLoader
    average: MovingAverage | None
    total_steps: int  # where the learning rates reach 0
    grid_faces: tuple[np.ndarray, np.ndarray]  # uint8 faces of A and of B the grid shows every time
    world: World = ALONE
    augment_policies: tuple[str, ...] = ()  # train.augment, parsed once
    domain_columns: int = 1  # the labels' leading columns that name the domain (model.cycle.domains), parsed once
    conditions: Conditions | None = None  # translators take no labels
    steps_taken: int = 0
    notes: list[str] = field(default_factory=list)

    def train_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        with distributed.own_randomness(self.world, self.config.train.seed, self.steps_taken, self.device):
            return self._step(*batch)

    def rate_factor(self, step: int) -> float:
        """The learning rates' share of their start at ``step`` (1, then linearly to 0)."""
        start = self.family_settings.decay_from * self.total_steps
        if step <= start or self.total_steps <= start:
            return 1.0
        return max(0.0, (self.total_steps - step) / (self.total_steps - start))

    @property
    def family_settings(self) -> cycle.Settings:
        return self.config.model.family_settings

    def _step(self, real_a: torch.Tensor, real_b: torch.Tensor, labels_a: torch.Tensor,
              labels_b: torch.Tensor) -> dict[str, torch.Tensor]:
        self.steps_taken += 1
        own, t = self.family_settings, self.config.train
        factor = self.rate_factor(self.steps_taken)
        for optimizer, rate in ((self.g_optimizer, t.g_lr), (self.d_optimizer, t.d_lr)):
            for group in optimizer.param_groups:
                group["lr"] = rate * factor
        with self.fast.autocast(self.device):
            fake_b, fake_a = self.to_b(real_a), self.to_a(real_b)
            back_a, back_b = self.to_a(fake_b), self.to_b(fake_a)
            self.discriminator.requires_grad_(False)  # G's step needs gradients through D, not for it
            adversarial = (least_squares(self.judge_b(self.shown(fake_b)), 1.0)
                           + least_squares(self.judge_a(self.shown(fake_a)), 1.0))
            if self.reader is not None:
                # asked for: the target domain's attribute columns (alike across a domain), the source's others
                shared = self.domain_columns
                wanted_b = torch.cat([labels_b[:, :shared], labels_a[:, shared:]], 1)
                wanted_a = torch.cat([labels_a[:, :shared], labels_b[:, shared:]], 1)
                kept = (F.binary_cross_entropy_with_logits(self.reader(fake_b), wanted_b)
                        + F.binary_cross_entropy_with_logits(self.reader(fake_a), wanted_a))
            self.discriminator.requires_grad_(True)
        cycled = F.l1_loss(back_a.float(), real_a) + F.l1_loss(back_b.float(), real_b)
        loss = adversarial + own.cycle * cycled
        figures = {"loss_g": adversarial.detach(), "cycle": cycled.detach() / 2}
        if own.smooth:
            grain = total_variation(fake_b.float() - real_a) + total_variation(fake_a.float() - real_b)
            loss = loss + own.smooth * grain
            figures["smooth"] = grain.detach() / 2
        if self.reader is not None:
            loss = loss + own.keep * kept
            figures["keep"] = kept.detach() / 2
        if own.identity:
            with self.fast.autocast(self.device):
                same_b, same_a = self.to_b(real_b), self.to_a(real_a)
            same = F.l1_loss(same_b.float(), real_b) + F.l1_loss(same_a.float(), real_a)
            loss = loss + own.identity * own.cycle * same
            figures["identity"] = same.detach() / 2
        self.g_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.g_optimizer.step()
        figures.update(self._critics_step(fake_a.detach(), fake_b.detach(), real_a, real_b, labels_a, labels_b))
        if self.average is not None:
            self.average.update(self.generator, t.batch_size, self.steps_taken * t.batch_size)
        return figures

    def _critics_step(self, fake_a: torch.Tensor, fake_b: torch.Tensor, real_a: torch.Tensor, real_b: torch.Tensor,
                      labels_a: torch.Tensor, labels_b: torch.Tensor) -> dict[str, torch.Tensor]:
        draws = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.config.train.seed, self.steps_taken]).generate_state(1)[0]))
        shown_a = self._from_pool(self.discriminator.pool_a, fake_a, draws)
        shown_b = self._from_pool(self.discriminator.pool_b, fake_b, draws)
        with self.fast.autocast(self.device):
            real_scores = self.judge_a(self.shown(real_a)).float(), self.judge_b(self.shown(real_b)).float()
            fake_scores = self.judge_a(self.shown(shown_a)).float(), self.judge_b(self.shown(shown_b)).float()
            if self.reader is not None:  # the attribute critic learns from real faces only
                read = (F.binary_cross_entropy_with_logits(self.reader(real_a), labels_a)
                        + F.binary_cross_entropy_with_logits(self.reader(real_b), labels_b))
        loss = sum(0.5 * (least_squares(r, 1.0) + least_squares(f, 0.0)) for r, f in zip(real_scores, fake_scores))
        figures = {"d_real": torch.cat(real_scores, 1).mean().detach(), "d_fake": torch.cat(fake_scores, 1).mean().detach()}
        if self.reader is not None:
            loss = loss + read
            figures["reader"] = read.detach() / 2
        self.d_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.d_optimizer.step()
        return {"loss_d": loss.detach(), **figures}

    def shown(self, images: torch.Tensor) -> torch.Tensor:
        """What a discriminator is shown of ``images``: augmented, when ``train.augment`` asks."""
        return augment.augment(images, self.augment_policies, self.generator.output_range)

    def _from_pool(self, pool: cycle.ImagePool, fakes: torch.Tensor, draws: torch.Generator) -> torch.Tensor:
        """What the discriminator sees for this process's ``fakes``: the pool draws for the
        whole batch, alike on every process, so every process keeps the same pool."""
        if not self.world.several:
            return pool.draw(fakes, draws)
        whole = distributed.whole_batch(fakes, self.world)
        share = len(fakes)
        return pool.draw(whole, draws)[self.world.rank * share : (self.world.rank + 1) * share]

    @property
    def sampler(self) -> torch.nn.Module:
        return self.average.module if self.average is not None else self.generator

    def log_figures(self) -> dict[str, float]:
        return {}

    def grid(self, path: Path) -> Path:
        """Rows of the same faces every time: a face of A | this translator's B | back to A,
        then faces of B | A | back to B."""
        return write_round_trips(self.sampler, *self.grid_faces, self.device, path)


def least_squares(scores: torch.Tensor, target: float) -> torch.Tensor:
    """LSGAN's loss (Mao et al. 2017): the mean squared distance of the scores from the target."""
    return (scores.float() - target).pow(2).mean()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """The mean absolute difference between neighbouring pixels, down and across, summed."""
    return ((images[:, :, 1:] - images[:, :, :-1]).abs().mean()
            + (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean())


def write_round_trips(translator: torch.nn.Module, faces_a: np.ndarray, faces_b: np.ndarray,
                      device: torch.device, path: Path) -> Path:
    columns: list[list[np.ndarray]] = [[], [], []]
    for faces, to_b in ((faces_a, True), (faces_b, False)):
        there = editing.translate(translator, faces, to_b, device)
        for column, part in zip(columns, (faces, there, editing.translate(translator, there, not to_b, device))):
            column.append(part)
    imaging.save_png(imaging.columns([np.concatenate(c) for c in columns]), path)
    return path


def set_up(config: cfg.Config, device: torch.device, images: np.ndarray,
           labels: np.ndarray | None = None, world: World = ALONE) -> TranslatorTraining:
    m, t = config.model, config.train
    family = models.family_of(m)
    networks.measured_elsewhere(config, "a translator", "benchmarks/translate_quality.py")
    if labels is None:
        raise FaceganError(f"a translator between {' and '.join(cycle.domain_names(m.family_settings.domains))} "
                           "needs the CelebA labels of its images")
    own = m.family_settings
    in_a, in_b = cycle.domain_of(labels, own.domains)
    shared = len(cycle.domain_attributes(own.domains))
    kept = cycle.balanced(labels[:, shared:], in_a, in_b, t.seed)  # the domains' images, balanced if asked
    names = cycle.domain_names(own.domains)
    for name, index in zip(names, kept):
        if len(index) < t.batch_size:
            balanced = f" balanced on {own.balance}" if own.balance else ""
            raise FaceganError(f"domain {name!r} has {len(index)} images in the data{balanced}, fewer than one "
                               f"batch of {t.batch_size}")
    fast, generator, critics, optimizers = networks.seeded_pair(config, device, images.nbytes, world)
    faces_a, faces_b = images[kept[0]], images[kept[1]]
    loaders = [BatchLoader(faces, t.batch_size, t.seed + k, device, generator.output_range, config.data.mirror,
                           channels_last=fast.channels_last, on_device=fast.data_on_device, labels=labels[index],
                           shard=(world.rank, world.size))
               for k, (faces, index) in enumerate(zip((faces_a, faces_b), kept))]
    loader = DomainLoader(*loaders)
    total = min(t.epochs * loader.steps_per_epoch, t.max_steps or t.epochs * loader.steps_per_epoch)
    rng = np.random.default_rng(t.seed)
    shown = tuple(faces[np.sort(rng.choice(len(faces), min(GRID_FACES, len(faces)), replace=False))]
                  for faces in (faces_a, faces_b))
    prepared = [speed.prepare_network(network, fast) for network in (generator.to_b, generator.to_a, critics.a, critics.b)]
    reader = speed.prepare_network(critics.reader, fast) if critics.reader is not None else None
    sizes = f"{names[0]} {len(kept[0]):,} and {names[1]} {len(kept[1]):,} images"
    note = (f"domains: {sizes}, balanced on {own.balance} (of {int(in_a.sum()):,} and {int(in_b.sum()):,})"
            if own.balance else f"domains: {sizes}")
    notes = [note]
    if own.output == "edit" and own.identity:
        notes.append("model.cycle.output edit starts at the identity, which the identity loss rewards: it can hold "
                     "the generators there (docs/experiments.md, translation round 2); --identity 0 lets them move")
    return TranslatorTraining(config, device, fast, family, generator, critics, *optimizers, *prepared, reader, loader,
                              MovingAverage(generator, t.ema_kimg) if t.ema_kimg > 0 else None, total, shown, world,
                              augment_policies=augment.policies(t.augment), domain_columns=shared, notes=notes)
