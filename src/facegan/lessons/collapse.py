"""Lesson 3: mode collapse. A discriminator that learns ten times slower than its
generator lets G pile onto one mode and hop to the next; each fix is one switch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from facegan.lessons import Lesson, Outcome, draw
from facegan.lessons.points import FIXES, Game, Setup, coverage, real_points

COLLAPSING = Setup(g_lr=1e-3, d_lr=1e-4)  # lesson 1's game, but D learns 10x slower than G
STEPS = 3000
CHECKS = 6  # coverage measured this many times over training: collapse shows as hopping
WHAT = {"r1": "R1 penalty on D's gradient at real points (gamma 1)",
        "spectral_norm": "spectral normalisation of D's layers",
        "mbstd": "minibatch standard deviation: D sees how much the batch varies",
        "equal_lr": "D learns as fast as G (1e-3)"}


def run(out: Path, seed: int, fixes: tuple[str, ...], scale: float) -> Outcome:
    setups = {"collapsing": COLLAPSING, **{fix: COLLAPSING.fixed(fix) for fix in fixes}}
    real = real_points(COLLAPSING, 512, torch.Generator().manual_seed(seed + 3))
    steps = max(CHECKS * 10, int(STEPS * scale))
    pictures, numbers, lines = [], {}, []
    for name, setup in setups.items():
        game = Game(replace(setup, seed=seed))
        covered = []
        for _ in range(CHECKS):
            game.play(steps // CHECKS)
            covered.append(coverage(game.fakes(), game.setup).modes)
        end = coverage(game.fakes(), game.setup)
        pictures.append(draw.scene(game.surface(), real, game.fakes(512), size=240,
                                   title=f"{name}: {end.modes} of {end.of} modes"))
        numbers[f"modes_{name}"] = end.modes
        numbers[f"mean_modes_{name}"] = round(sum(covered) / len(covered), 2)
        numbers[f"on_mode_{name}"] = round(end.on_mode, 3)
        lines.append(f"  {name:<14} {end.modes} modes at the end, {sum(covered) / len(covered):.1f} on average over "
                     f"{CHECKS} checks ({', '.join(map(str, covered))}); {end.on_mode:.0%} of points on a mode"
                     + (f"  [{WHAT[name]}]" if name in WHAT else ""))
    figure = draw.save(draw.side_by_side(pictures, caption=f"seed {seed}, {steps:,} steps each; "
                                                         "black: real, orange: G"), out / "collapse.png")
    fixed = [n for n in setups if n != "collapsing" and numbers[f"mean_modes_{n}"] > numbers["mean_modes_collapsing"] + 1]
    text = f"""Lesson 1's game with one change: D learns ten times slower than G (1e-4 against 1e-3).
G finds that one region D rates "real", moves all its points there, and by the time D has
learned to reject it, G has jumped to the next: it sits on or near one mode at a time and
hops (collapse.png, the first panel; run it with another --seed to see it land elsewhere).
This is mode collapse, the thesis's "mostly female faces" in miniature: G is rewarded for
any one output D accepts, not for covering everything.

Measured (seed {seed}; modes covered = modes holding at least a quarter of their fair
share of G's points, within 3 standard deviations):
""" + "\n".join(lines) + f"""

Fixes that covered clearly more modes here: {', '.join(fixed) if fixed else 'none'}. The cause in this setup
is a D too slow to punish G's concentration: what lets D respond in time fixes it, while
R1 and spectral normalisation, which make D smoother and weaker, address a different
failure (lesson 4) and can leave this one as it is. Which fix works depends on why G
collapsed."""
    return Outcome({"collapse": figure}, numbers, text)


LESSON = Lesson(3, "collapse", "Mode collapse, and one switch per fix", run, fixes=FIXES,
                code=("facegan/lessons/points.py: Setup.fixed, coverage",
                      "facegan/models/family.py: spectral_normalise; facegan/models/layers.py: MinibatchStd",
                      "facegan/train/steps.py: Objective.judge_real (R1)"))
