"""Lesson 6: faces. The demo's small DCGAN on the built-in faces, trained for the same
steps from the same start as the thesis trained it, and with the modern recipe's
pieces: a moving average of G's weights (EMA), DiffAugment, R1."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegan.demo import MEASURE_N, run_demo
from facegan.lessons import Lesson, Outcome, draw

STEPS = 1000
PIECES = {"ema": {"ema_kimg": 2.0}, "diffaugment": {"augment": "color,translation,cutout"},
          "r1": {"r1_gamma": 1.0, "r1_every": 4}}
SHOWN = 16


def train_variant(out: Path, name: str, pieces: tuple[str, ...], seed: int, steps: int) -> dict:
    """``facegan demo``'s run and measurement, for ``steps`` steps with ``pieces`` switched on."""
    import torch

    settings = {"seed": seed, "max_steps": steps, "threads": torch.get_num_threads(), "keep_checkpoints": 1}
    for piece in pieces:
        settings.update(PIECES[piece])
    return run_demo(str(out / "runs" / name), None, **settings)


def run(out: Path, seed: int, fixes: tuple[str, ...], scale: float) -> Outcome:
    steps = max(20, int(STEPS * scale))
    variants = variants_of(fixes)
    pictures, numbers, lines = [], {}, []
    for name, pieces in variants.items():
        result = train_variant(out, name, pieces, seed, steps)
        numbers.setdefault("swd_untrained", round(result["swd_before"], 3))  # every variant starts from the same G
        distance = result["swd_after"]
        numbers[f"swd_{name}"] = round(distance, 3)
        grid = draw.Image.fromarray(sample_grid(result["faces"][:SHOWN]))
        pictures.append(draw.side_by_side([grid], gap=0, caption=f"{name}: distance {distance:.2f}"))
        lines.append(f"  {name:<24} sliced Wasserstein distance to the faces {distance:.2f}"
                     + (f"  ({', '.join(pieces)})" if pieces else "  (no EMA, no DiffAugment, no R1)"))
    figure = draw.save(draw.side_by_side(pictures), out / "faces.png")
    best = min(variants, key=lambda n: numbers[f"swd_{n}"])
    verdict = (f"In this run the closest was {best}. On two cores of CPU time the pieces cost steps and\n"
               "pay slowly; on CelebA photos (docs/experiments.md, rounds 1 and 3) EMA lowered FID from\n"
               "339 to 300 at the same 803 steps, DiffAugment over 45 minutes gave the lowest FID and\n"
               "made men 48.5% of the faces instead of 12.4% (the thesis's mostly female faces), and R1\n"
               "gave the most varied samples but a worse FID at that budget. Look for lesson 5's\n"
               "checkerboard in the grids, too.")
    text = f"""The demo's DCGAN (32 px) trained on facegan's built-in cartoon faces for {steps:,} steps from
the same start, as the thesis trained (nothing added), and with the modern recipe's
pieces switched on (faces.png; --fix names one piece or more: {', '.join(PIECES)}):

""" + "\n".join(lines) + f"""

Lower is closer (sliced Wasserstein distance of {MEASURE_N} samples to {MEASURE_N} faces, as facegan demo measures, x100; the
untrained generator's: {numbers['swd_untrained']:.2f}).
EMA samples with a moving average of G's weights, which smooths away the last steps'
jitter; DiffAugment shows D only randomly shifted, recoloured and cut-out views of real
and fake alike, so D cannot memorise the few images it has; R1 keeps D's surface
smooth around the real images (lesson 4).

{verdict}"""
    return Outcome({"faces": figure}, numbers, text)


def variants_of(fixes: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """The runs to compare: the thesis's; with every piece named (the default), EMA alone
    and all of them ("modern"); else each piece named alone, and together if several."""
    if set(fixes) == set(PIECES):
        return {"thesis": (), "ema": ("ema",), "modern": tuple(PIECES)}
    together = {"-".join(fixes): fixes} if len(fixes) > 1 else {}
    return {"thesis": (), **{fix: (fix,) for fix in fixes}, **together}


def sample_grid(made: np.ndarray) -> np.ndarray:
    from facegan import images as imaging

    return np.repeat(np.repeat(imaging.grid(made, 4), 2, axis=0), 2, axis=1)


LESSON = Lesson(6, "faces", "Faces: the thesis's training against the modern recipe's pieces", run,
                fixes=tuple(PIECES), code=("facegan/train/ema.py: MovingAverage", "facegan/train/augment.py: TRANSFORMS",
                                           "facegan/train/steps.py: Objective.judge_real (R1)"))
