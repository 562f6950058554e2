"""``facegan lesson``: numbered lessons, each one command that trains something small
for real and writes the figures that show one idea of how GANs learn or fail, with a
short text of what to look at and the numbers it measured.

A lesson is a ``Lesson`` record at the end of its own module; ``MODULES`` names those
modules in the lessons' order. Each has a ``run(out, seed, fixes, scale)`` returning an ``Outcome``; ``scale`` shortens its
training (the tests run every lesson at a small scale and check what it teaches).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from facegan import files
from facegan.errors import FaceganError


@dataclass
class Outcome:
    """What a lesson made: its figures, the numbers it measured, what to look at."""

    figures: dict[str, Path]
    numbers: dict[str, float]
    text: str
    seconds: float = 0.0


@dataclass(frozen=True)
class Lesson:
    number: int
    name: str  # its folder under the output: NN-name
    title: str
    run: Callable[..., Outcome]
    fixes: tuple[str, ...] = ()  # what --fix may name; all are shown when none is named
    code: tuple[str, ...] = field(default=())  # where facegan implements what it shows


MODULES = ("game", "gradients", "collapse", "convergence", "upsampling", "faces")  # lessons 1, 2, ...


def lessons() -> tuple[Lesson, ...]:
    """Every lesson, in order (their modules import the lesson's networks and data only now)."""
    import importlib

    return tuple(importlib.import_module(f"facegan.lessons.{name}").LESSON for name in MODULES)


def find(number: int) -> Lesson:
    for lesson in lessons():
        if lesson.number == number:
            return lesson
    raise FaceganError(f"there is no lesson {number}: they are 1 to {len(lessons())} (facegan lesson --list)")


def checked_fixes(lesson: Lesson, fixes: tuple[str, ...]) -> tuple[str, ...]:
    """The fixes to show: those named (each must be one of the lesson's), else all of them."""
    unknown = [f for f in fixes if f not in lesson.fixes]
    if unknown:
        known = ", ".join(lesson.fixes) if lesson.fixes else "none"
        raise FaceganError(f"lesson {lesson.number} has no fix {unknown[0]!r} (its fixes: {known})")
    return fixes or lesson.fixes


def folder(out: Path, lesson: Lesson) -> Path:
    return out / f"{lesson.number}-{lesson.name}"


def run(lesson: Lesson, out: Path, seed: int = 0, fixes: tuple[str, ...] = (), scale: float = 1.0) -> Outcome:
    """Run one lesson into ``out/N-name/``; its text and numbers are written there too
    (``lesson.txt``, ``numbers.json``)."""
    import time

    import torch

    if not 0 < scale <= 1:
        raise FaceganError(f"scale must be in (0, 1], not {scale}")
    where = files.make_folder(folder(out, lesson))
    start = time.perf_counter()
    with torch.random.fork_rng():
        outcome = lesson.run(where, seed, checked_fixes(lesson, fixes), scale)
    outcome.seconds = time.perf_counter() - start
    files.atomic_write(where / "lesson.txt", lambda f: f.write(f"{lesson.number}. {lesson.title}\n\n{outcome.text}\n"
                                                               .encode()))
    numbers = {"lesson": lesson.number, "seed": seed, "scale": scale, "seconds": round(outcome.seconds, 1),
               **outcome.numbers}
    files.atomic_write(where / "numbers.json", lambda f: f.write(json.dumps(numbers, indent=1).encode()))
    return outcome
