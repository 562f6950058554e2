"""Kinds of model, and what the run machinery asks of each.

The run machinery (``facegan.train.trainer``: the run directory and its lock, one
checkpoint schema, signals and exact resume, the moving average, the metrics log, grids
and the progress GIF, the speed plan, DDP) is the same for every kind of model. What
differs is declared by the kind:

- its data: what a batch of its loader is, made from the run's images and labels (one
  prepared cache): the generator kind's is (real images, their labels or None);
- its step: what one training step does with a batch;
- its sample grid: what a person looks at every epoch;
- its evaluation: what evaluations during training compute (given to ``train`` from above).

A family names its kind (``Family.kind``) and the CelebA labels its training loads
(``Family.data_attributes``); ``set_up`` of that kind builds a ``Training`` from the
run's settings and data, and the session drives it. Three kinds exist:

- ``generator``: z and labels -> face (``facegan.train.generation``);
- ``upscaler``: a face at S px -> the same face at k*S px, trained on pairs one cache
  gives (``facegan.train.upscaling``);
- ``translator``: a face of domain A <-> domain B, unpaired, the domains one cache split
  by its labels (``facegan.train.translation``). Its two generators are one module in
  the checkpoint's generator entry, its two discriminators and their pools of past
  fakes one in its discriminator entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import numpy as np
import torch

from facegan import config as cfg
from facegan.conditions import Conditions
from facegan.train import generation, translation, upscaling
from facegan.train.distributed import World
from facegan.train.speed import SpeedPlan


class Loader(Protocol):
    steps_per_epoch: int

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Any]: ...


class Training(Protocol):
    """One kind's training, set up: what the session needs from it."""

    device: torch.device
    fast: SpeedPlan  # the speed settings chosen for the device (said in the first log line)
    world: World  # the processes training together
    loader: Loader  # batches of an epoch, in an order that depends only on (seed, epoch)
    conditions: Conditions | None  # a conditional model's attributes and their joint distribution (from its labels)
    steps_taken: int
    notes: list[str]  # what set_up says about the data (a translator: its domains), printed before training

    def train_step(self, batch: Any) -> dict[str, torch.Tensor]: ...  # one step; figures for the log, on the device

    def state(self) -> dict[str, Any]: ...  # the networks' and optimisers' part of a checkpoint

    def restore(self, state: Any, steps_taken: int) -> None: ...

    def start_from(self, weights: dict[str, torch.Tensor]) -> None: ...  # a new run's generator from another's

    def grid(self, path: Path) -> Path: ...  # the sample grid, from the same inputs every time

    def log_figures(self) -> dict[str, float]: ...  # what the family adds to a row of the log

    @property
    def sampler(self) -> torch.nn.Module: ...  # the network evaluations and exports use


@dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    set_up: Callable[[cfg.Config, torch.device, np.ndarray, np.ndarray | None, World], Training]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("generator", "z (and labels) -> face, against a discriminator", generation.set_up),
    Kind("upscaler", "a face at S px -> the same face at k*S px, from pairs one cache gives", upscaling.set_up),
    Kind("translator", "a face of domain A <-> domain B, unpaired (one cache split by its labels)",
         translation.set_up),
)}
