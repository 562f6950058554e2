"""An exponential moving average of the generator's weights (Karras et al. 2018, 2019).

The average of the last few thousand generators makes smoother, better faces than the
generator of any one step; samples, evaluations and exported checkpoints use it.

The decay per step follows from a half-life in images, so it does not depend on the
batch size: beta = 0.5 ** (batch / half_life). Early in training the half-life is
capped at 5% of the images seen so far (StyleGAN2's ramp-up), so the average does not
drag the random initial weights along for thousands of steps. While a network grows
(a family with the ``Growth`` capability) its family caps the half-life too (``limit``;
progressive growing's: a sixth of a growth phase), since each new stage starts from
random weights as well: with a 10k
half-life throughout, the average of a stage that faded in over 6k images was mostly its
random start (docs/experiments.md, round 11). Buffers (batch-norm statistics) are
copied, not averaged.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

RAMPUP = 0.05


class MovingAverage:
    def __init__(self, generator: nn.Module, half_life_kimg: float,
                 limit: Callable[[nn.Module], float] | None = None):
        """``limit(average)``: the longest half-life, in images, the family allows now (the
        trainer grows the average with the generator)."""
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self.half_life = half_life_kimg * 1000
        self.limit = limit

    def beta(self, batch: int, images_seen: int) -> float:
        half_life = min(self.half_life, images_seen * RAMPUP,
                        self.limit(self.module) if self.limit is not None else math.inf)
        return 0.5 ** (batch / max(half_life, 1e-8))

    @torch.no_grad()
    def update(self, generator: nn.Module, batch: int, images_seen: int) -> None:
        """Move the average towards ``generator`` after a step; ``images_seen`` counts that step."""
        beta = self.beta(batch, images_seen)
        averaged = list(self.module.parameters())
        torch._foreach_lerp_(averaged, [p.detach() for p in generator.parameters()], 1.0 - beta)
        for mine, theirs in zip(self.module.buffers(), generator.buffers()):
            mine.copy_(theirs)
