"""Lesson 4: non-convergence. The smallest GAN there is (Mescheder et al. 2018's Dirac
GAN: real data is the single point 0, G is one number theta, D(x) = psi * x) circles its
equilibrium forever; R1 on D's gradient at the real data makes it converge."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import nn

from facegan.lessons import Lesson, Outcome, draw
from facegan.train.steps import Objective, alternating_step

STEPS = 1500
LR = 0.1  # plain gradient descent, the same for both players
BATCH = 8


class Point(nn.Module):
    """G: every sample is the same number, theta."""

    z_dim = 1

    def __init__(self, theta: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.theta.expand(len(z)).view(-1, 1, 1, 1)


class Line(nn.Module):
    """D: a logit of psi * x."""

    def __init__(self, psi: float):
        super().__init__()
        self.psi = nn.Parameter(torch.tensor(psi))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.psi * x.flatten()


def start(seed: int) -> tuple[float, float]:
    """Where (theta, psi) starts: (1, 1) for seed 0, else as far from (0, 0) in a direction the seed draws."""
    if seed == 0:
        return 1.0, 1.0
    angle = float(torch.rand(1, generator=torch.Generator().manual_seed(seed))) * 2 * math.pi
    return math.sqrt(2) * math.cos(angle), math.sqrt(2) * math.sin(angle)


def play(r1_gamma: float, steps: int, seed: int) -> tuple[list[tuple[float, float]], list[dict[str, float]]]:
    """The path of (theta, psi) from ``start(seed)`` and each step's figures."""
    theta, psi = start(seed)
    g, d = Point(theta), Line(psi)
    g_opt, d_opt = torch.optim.SGD(g.parameters(), LR), torch.optim.SGD(d.parameters(), LR)
    objective = Objective(r1_gamma=r1_gamma, r1_every=1)
    real, z = torch.zeros(BATCH, 1, 1, 1), torch.zeros(BATCH, 1)
    path, rows = [(theta, psi)], []
    for step in range(steps):
        figures = alternating_step(g, d, g_opt, d_opt, real, z, objective, step)
        path.append((g.theta.item(), d.psi.item()))
        rows.append({k: float(v) for k, v in figures.items()})
    return path, rows


def phase_plot(paths: dict[str, list[tuple[float, float]]], size: int = 420) -> Image.Image:
    """The paths in the (theta, psi) plane, the equilibrium (0, 0) marked."""
    extent = max(1.6, max(max(abs(a), abs(b)) for p in paths.values() for a, b in p) * 1.1)
    picture = Image.new("RGB", (size, size + 30), "white")
    d = ImageDraw.Draw(picture)

    def at(theta: float, psi: float) -> tuple[float, float]:
        return (theta + extent) / (2 * extent) * size, 30 + (extent - psi) / (2 * extent) * size

    d.line([at(-extent, 0), at(extent, 0)], fill=(200, 200, 200))
    d.line([at(0, -extent), at(0, extent)], fill=(200, 200, 200))
    d.text((size - 4, size + 26), "theta (G)", fill=(90, 90, 90), font=draw.font(12), anchor="ra")
    d.text((at(0, 0)[0] + 4, 34), "psi (D)", fill=(90, 90, 90), font=draw.font(12))
    x = 8
    for (name, path), colour in zip(paths.items(), draw.SERIES):
        d.line([at(*p) for p in path], fill=colour, width=2)
        d.text((x, 8), name, fill=colour, font=draw.font(14))
        x += 16 + int(d.textlength(name, font=draw.font(14)))
    cx, cy = at(0, 0)
    d.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], outline=(0, 0, 0), width=2)
    s0 = at(*next(iter(paths.values()))[0])
    d.rectangle([s0[0] - 3, s0[1] - 3, s0[0] + 3, s0[1] + 3], fill=(0, 0, 0))
    return picture


def turns(path: list[tuple[float, float]]) -> float:
    """How many times the last quarter of a path goes round the equilibrium."""
    tail = path[-max(2, len(path) // 4):]
    swept = 0.0
    for (a0, b0), (a1, b1) in zip(tail, tail[1:]):
        step = math.atan2(b1, a1) - math.atan2(b0, a0)
        swept += (step + math.pi) % (2 * math.pi) - math.pi
    return abs(swept) / (2 * math.pi)


def swing(values: list[float]) -> float:
    """How much a curve still oscillates: the standard deviation of its last quarter."""
    tail = torch.tensor(values[-max(2, len(values) // 4):])
    return float(tail.std())


def run(out: Path, seed: int, fixes: tuple[str, ...], scale: float) -> Outcome:
    steps = max(100, int(STEPS * scale))
    runs = {"plain": play(0.0, steps, seed), **({"r1": play(1.0, steps, seed)} if "r1" in fixes else {})}
    phase = draw.save(phase_plot({name: path for name, (path, _) in runs.items()}), out / "phase.png")
    losses = draw.save(draw.chart({f"{name}: G's loss": [(i + 1, r["loss_g"]) for i, r in enumerate(rows)]
                                   for name, (_, rows) in runs.items()},
                                  "G's loss at each step", "step"), out / "losses.png")
    numbers, lines = {}, []
    for name, (path, rows) in runs.items():
        theta, psi = path[-1]
        distance = math.hypot(theta, psi)
        numbers[f"distance_{name}"] = round(distance, 4)
        numbers[f"loss_swing_{name}"] = round(swing([r["loss_g"] for r in rows]), 4)
        numbers[f"turns_{name}"] = round(turns(path), 2) if distance > 1e-3 else 0.0
        lines.append(f"  {name:<6} ends {distance:.3f} from the equilibrium (theta, psi) = (0, 0), going round it "
                     f"{numbers[f'turns_{name}']:.1f} times in the last quarter; G's loss still swings by "
                     f"{numbers[f'loss_swing_{name}']:.4f} (standard deviation, last quarter)")
    text = f"""The smallest GAN: the real data is the point 0, G's samples are all one number theta,
D says psi * x. The equilibrium is theta = 0 (G makes the real data) with psi = 0 (D
cannot tell). Starting from ({start(seed)[0]:.2f}, {start(seed)[1]:.2f}), both learn by plain gradient descent, lr {LR}, with
facegan's own alternating step, for {steps:,} steps (phase.png):

""" + "\n".join(lines) + """

Without help the two circle the equilibrium instead of settling: each player's best move
undoes the other's, and gradient descent on a game is not descent on one loss. The
circles shrink ever more slowly and the losses keep oscillating (losses.png), so their
values say little about progress.
This is the thesis's non-convergence. R1 penalises D's gradient at the real data (here
psi itself), which damps the circling so both spiral into the equilibrium; it is why
facegan's modern presets set r1_gamma."""
    return Outcome({"phase": phase, "losses": losses}, numbers, text)


LESSON = Lesson(4, "convergence", "Non-convergence: the game circles its equilibrium, R1 lets it settle", run,
                fixes=("r1",), code=("facegan/train/steps.py: Objective.judge_real (R1), alternating_step",))
