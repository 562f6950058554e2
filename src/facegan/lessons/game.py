"""Lesson 1: the game on 2-D points. D's surface and G's points over training."""

from __future__ import annotations

from pathlib import Path

import torch

from facegan import images as imaging
from facegan.lessons import Lesson, Outcome, draw
from facegan.lessons.points import Game, Setup, coverage, real_points

STEPS = 3000
FRAMES = 24


def snapshot(game: Game, real: torch.Tensor, size: int = 300, note: str = "") -> "draw.Image.Image":
    c = coverage(game.fakes(), game.setup)
    title = f"step {game.steps:,}: {c.modes} of {c.of} modes, {c.on_mode:.0%} on a mode{note}"
    return draw.scene(game.surface(), real, game.fakes(512), size=size, title=title)


def run(out: Path, seed: int, fixes: tuple[str, ...], scale: float) -> Outcome:
    game = Game(Setup(seed=seed))
    real = real_points(game.setup, 512, torch.Generator().manual_seed(seed + 3))
    steps = max(FRAMES, int(STEPS * scale))
    start = coverage(game.fakes(), game.setup)
    frames, history = [snapshot(game, real)], []
    for i in range(FRAMES):
        figures = game.play(steps // FRAMES)
        history.append((game.steps, figures))
        frames.append(snapshot(game, real))
    end = coverage(game.fakes(), game.setup)
    animation = out / "game.gif"
    imaging.save_gif(frames, animation, min_width=0, frame_ms=150)
    stills = draw.side_by_side([frames[0], frames[len(frames) // 3], frames[-1]],
                               caption="black: real points; orange: G's; green: D says real, blue: D says fake")
    still = draw.save(stills, out / "game.png")
    curves = draw.chart({"D(real)": [(s, f["d_real"]) for s, f in history],
                         "D(G(z))": [(s, f["d_fake"]) for s, f in history]},
                        "D's mean output on real and on generated points", "training step", limits=(0, 1))
    outputs = draw.save(curves, out / "outputs.png")
    numbers = {"modes_start": start.modes, "modes_end": end.modes, "modes": end.of,
               "on_mode_start": round(start.on_mode, 3), "on_mode_end": round(end.on_mode, 3),
               "d_real_end": round(history[-1][1]["d_real"], 3), "d_fake_end": round(history[-1][1]["d_fake"], 3)}
    close = abs(numbers["d_real_end"] - 0.5) < 0.15 and abs(numbers["d_fake_end"] - 0.5) < 0.15
    verdict = (": both near 0.5, D can barely tell them apart, which is the game's equilibrium" if close else
               ": D still tells them apart, the game is not at its equilibrium yet")
    text = f"""The real data is {end.of} Gaussians on a ring (black). G turns 2-D noise into points (orange);
D scores every point of the plane (green: "real", blue: "fake", white: can't tell).
Watch game.gif: D paints blue wherever G's points are and green on the real modes; G's
points flow uphill on D's surface, towards green, and D repaints. Neither network sees
the ring: G learns it only from D's gradient.

Measured (seed {seed}, {game.steps:,} steps): G's points covered {start.modes} of {end.of} modes at the start and
{end.modes} at the end; {start.on_mode:.0%} then {end.on_mode:.0%} of its points lay within 3 standard deviations
of a mode. At the end D gave real points {numbers['d_real_end']:.2f} and G's {numbers['d_fake_end']:.2f} on
average (outputs.png){verdict}. Its surface stays patchy: D is not a density, only a
critic of G's current mistakes."""
    return Outcome({"animation": animation, "stills": still, "outputs": outputs}, numbers, text)


LESSON = Lesson(1, "game", "The game on 2-D points: D's surface and G's points", run,
                code=("facegan/lessons/points.py: Game, PointGenerator, PointDiscriminator",
                      "facegan/train/steps.py: alternating_step (the same step trains faces)"))
