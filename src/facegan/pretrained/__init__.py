"""Models shipped with facegan: faces (larger faces, edited faces) without training first.

Each is a generator file (``facegan.generator_file``) in this folder, named
``<model>.safetensors``, carrying its model card's figures in its metadata; the card
itself, with how each figure was measured, is docs/model-card.md.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from facegan import generator_file
from facegan.errors import FaceganError

FOLDER = Path(__file__).parent
DEFAULT = "celeba64"  # what `facegan generate` uses when given no run, checkpoint or model
UPSCALER = "sr128"  # what `facegan upscale` and `facegan generate --upscale` use when given none


def names() -> list[str]:
    return sorted(p.name[: -len(generator_file.SUFFIX)] for p in FOLDER.glob(f"*{generator_file.SUFFIX}"))


def kind(name: str) -> str:
    """The kind of model the shipped ``name`` is (facegan.train.kinds): generator, upscaler or translator."""
    from facegan import models  # a registry lookup

    return models.FAMILIES[generator_file.metadata(path(name))["config"]["model"]["family"]].kind


def upscalers() -> list[str]:
    return [name for name in names() if kind(name) == "upscaler"]


def path(name: str) -> Path:
    """The shipped model called ``name``."""
    found = FOLDER / f"{name}{generator_file.SUFFIX}"
    if "/" in name or name.startswith(".") or not found.is_file():
        shipped = names()
        close = difflib.get_close_matches(name, shipped, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise FaceganError(f"no shipped model {name!r}{hint}; facegan ships: {', '.join(shipped) or 'none'}")
    return found
