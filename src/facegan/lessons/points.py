"""The GAN game on 2-D points: a true distribution a learner can see whole, networks
small enough to train in seconds, and facegan's own training step and losses.

The real data is a mixture of Gaussians (a ring, or a grid). The generator maps 2-D
noise to points, the discriminator points to a logit; both are small multilayer
perceptrons. A step is ``facegan.train.steps.alternating_step`` with an ``Objective``
(the loss, R1), exactly as for faces: points travel as (N, 2, 1, 1) tensors, images of
one pixel with two channels. The fixes are the ones facegan uses on faces:
spectral normalisation (``models.family.spectral_normalise``), minibatch standard
deviation (``models.layers.MinibatchStd``), R1, and a slower discriminator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from facegan.models.family import spectral_normalise
from facegan.models.layers import MinibatchStd
from facegan.train.steps import LOSSES, Objective, alternating_step

FIXES = ("r1", "spectral_norm", "mbstd", "equal_lr")  # each one switch; see Setup.fixed


@dataclass(frozen=True)
class Setup:
    """One game: the data, the two networks and how they learn."""

    data: str = "ring"  # "ring": 8 Gaussians on a circle; "grid": 5 x 5 Gaussians
    spread: float = 0.05  # each Gaussian's standard deviation
    loss: str = "nonsaturating"  # one of facegan.train.steps.LOSSES
    hidden: int = 128  # units per hidden layer, both networks
    g_layers: int = 3
    d_layers: int = 3
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    batch: int = 256
    r1_gamma: float = 0.0
    spectral_norm: bool = False
    mbstd: bool = False
    seed: int = 0
    fixes: tuple[str, ...] = field(default=())

    def fixed(self, fix: str) -> "Setup":
        """This setup with one more fix switched on (one of FIXES)."""
        if fix not in FIXES:
            raise ValueError(f"unknown fix {fix!r}: one of {', '.join(FIXES)}")
        change = {"r1": {"r1_gamma": 1.0}, "spectral_norm": {"spectral_norm": True}, "mbstd": {"mbstd": True},
                  "equal_lr": {"d_lr": self.g_lr}}[fix]
        return replace(self, fixes=(*self.fixes, fix), **change)

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}: one of {', '.join(LOSSES)}")
        if self.data not in ("ring", "grid"):
            raise ValueError(f"unknown data {self.data!r}: ring or grid")


def centres(data: str) -> torch.Tensor:
    """The means of the mixture: (K, 2)."""
    if data == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)).float()
    axis = torch.linspace(-2.0, 2.0, 5)
    return torch.cartesian_prod(axis, axis)


def real_points(setup: Setup, n: int, generator: torch.Generator) -> torch.Tensor:
    modes = centres(setup.data)
    which = torch.randint(len(modes), (n,), generator=generator)
    return modes[which] + setup.spread * torch.randn(n, 2, generator=generator)


def _mlp(features_in: int, hidden: int, layers: int, features_out: int) -> list[nn.Module]:
    parts: list[nn.Module] = []
    for i in range(layers - 1):
        parts += [nn.Linear(features_in if i == 0 else hidden, hidden), nn.ReLU()]
    return [*parts, nn.Linear(hidden if layers > 1 else features_in, features_out)]


class PointGenerator(nn.Module):
    """2-D noise to 2-D points, shaped (N, 2, 1, 1) as a step expects of images."""

    z_dim = 2

    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.net = nn.Sequential(*_mlp(self.z_dim, hidden, layers, 2))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z.flatten(1)).view(-1, 2, 1, 1)


class PointDiscriminator(nn.Module):
    """Points to one logit each. With ``mbstd``, the last hidden layer also sees how much
    the batch's features vary (a batch of near-identical points is easy to reject)."""

    def __init__(self, hidden: int, layers: int, mbstd: bool):
        super().__init__()
        self.body = nn.Sequential(*_mlp(2, hidden, layers - 1, hidden), nn.ReLU())
        self.spread = MinibatchStd() if mbstd else None
        self.head = nn.Linear(hidden + (1 if mbstd else 0), 1)

    def forward(self, points: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.body(points.flatten(1))
        if self.spread is not None:
            h = self.spread(h.view(*h.shape, 1, 1)).flatten(1)
        return self.head(h).flatten()


class Game:
    """Both networks of a ``Setup``, their optimisers and the step count: ``play`` steps
    it, the other methods look at it without changing it."""

    def __init__(self, setup: Setup):
        setup.check()
        self.setup = setup
        torch.manual_seed(setup.seed)
        self.generator = PointGenerator(setup.hidden, setup.g_layers)
        self.discriminator = PointDiscriminator(setup.hidden, setup.d_layers, setup.mbstd)
        if setup.spectral_norm:
            spectral_normalise(self.discriminator)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), setup.g_lr, betas=setup.betas)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), setup.d_lr, betas=setup.betas)
        self.objective = Objective(loss=setup.loss, r1_gamma=setup.r1_gamma, r1_every=1)
        self.noise = torch.Generator().manual_seed(setup.seed + 1)
        self.fixed_z = torch.randn(1024, 2, generator=torch.Generator().manual_seed(setup.seed + 2))
        self.steps = 0

    def play(self, steps: int = 1) -> dict[str, float]:
        """``steps`` training steps; the last step's figures (losses, mean D outputs)."""
        figures: dict[str, torch.Tensor] = {}
        for _ in range(steps):
            real = real_points(self.setup, self.setup.batch, self.noise).view(-1, 2, 1, 1)
            z = torch.randn(self.setup.batch, 2, generator=self.noise)
            figures = alternating_step(self.generator, self.discriminator, self.g_optimizer, self.d_optimizer,
                                       real, z, self.objective, self.steps)
            self.steps += 1
        return {k: float(v) for k, v in figures.items()}

    @torch.no_grad()
    def fakes(self, n: int = 1024) -> torch.Tensor:
        """G's points for the same noise every time: (n, 2)."""
        return self.generator(self.fixed_z[:n]).flatten(1)

    @torch.no_grad()
    def surface(self, side: int = 64, extent: float = 3.0) -> torch.Tensor:
        """D's probability that a point is real over a side x side grid of [-extent,
        extent]^2, rows from top (y = +extent) to bottom."""
        axis = torch.linspace(-extent, extent, side)
        ys, xs = torch.meshgrid(axis.flip(0), axis, indexing="ij")
        grid = torch.stack([xs.flatten(), ys.flatten()], dim=1).view(-1, 2, 1, 1)
        self.discriminator.eval()  # spectral norm: no power iteration while looking
        try:
            logits = self.discriminator(grid)
        finally:
            self.discriminator.train()
        return torch.sigmoid(logits).view(side, side)

    def generator_gradient(self, n: int = 1024) -> float:
        """The size of G's loss gradient, per parameter (root mean square), on ``n`` fixed
        latents against D as it is now: what G has to learn from."""
        self.generator.zero_grad(set_to_none=True)
        self.discriminator.requires_grad_(False)
        loss = self.objective.g_loss(self.discriminator(self.generator(self.fixed_z[:n])))
        loss.backward()
        self.discriminator.requires_grad_(True)
        grads = torch.cat([p.grad.flatten() for p in self.generator.parameters()])
        self.generator.zero_grad(set_to_none=True)
        return float(grads.square().mean().sqrt())


@dataclass(frozen=True)
class Coverage:
    """How G's points fall on the true modes."""

    modes: int  # modes holding at least MIN_SHARE of the points
    of: int  # modes in all
    on_mode: float  # share of points within 3 spreads of some mode ("high quality")


MIN_SHARE = 0.25  # a mode counts as covered with a quarter of its fair share of points


def coverage(points: torch.Tensor, setup: Setup) -> Coverage:
    modes = centres(setup.data)
    distance = torch.cdist(points.float(), modes)
    nearest, which = distance.min(dim=1)
    close = nearest < 3 * setup.spread
    counts = torch.bincount(which[close], minlength=len(modes)).float()
    covered = int((counts >= MIN_SHARE * len(points) / len(modes)).sum())
    return Coverage(covered, len(modes), float(close.float().mean()))
