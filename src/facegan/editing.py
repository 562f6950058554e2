"""Editing faces with translators: which translator, in which direction, an edit such
as ``Smiling=1`` asks for, and edits applied to uint8 faces.

A translator between ``Smiling``'s domains (A without, B with) makes ``Smiling=1`` with
its A -> B generator and ``Smiling=0`` with B -> A. One between ``Blond_Hair:Black_Hair``
makes ``Black_Hair=1`` (or ``Blond_Hair=0``) with A -> B and ``Blond_Hair=1`` (or
``Black_Hair=0``) with B -> A. Several edits apply one after another, in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facegan import models
from facegan.errors import FaceganError


@dataclass(frozen=True)
class Edit:
    attribute: str
    value: int
    translator: torch.nn.Module
    to_b: bool  # which of its generators makes it
    source: Path  # the file it came from
    resolution: int  # the side of the faces it takes and gives

    def __str__(self) -> str:
        return f"{self.attribute}={self.value}"


def direction(domains: str, attribute: str, value: int) -> bool | None:
    """Whether ``attribute=value`` is made by the A -> B generator of a translator between
    ``domains`` (False: by B -> A), or None when the translator does not know the attribute."""
    from facegan.models import cycle

    names = cycle.domain_attributes(domains)
    if attribute not in names:
        return None
    if len(names) == 1:
        return value == 1
    return (attribute == names[1]) == (value == 1)


def offered(domains: str) -> list[tuple[str, int]]:
    """The edits a translator between ``domains`` makes, A -> B's first: (Smiling, 1) and
    (Smiling, 0); (Black_Hair, 1) and (Blond_Hair, 1)."""
    from facegan.models import cycle

    names = cycle.domain_attributes(domains)
    return [(names[0], 1), (names[0], 0)] if len(names) == 1 else [(names[1], 1), (names[0], 1)]


def shipped_translators() -> dict[str, str]:
    """The shipped translators by name, each with its domains (``model.cycle.domains``)."""
    from facegan import generator_file, pretrained

    found = {}
    for name in pretrained.names():
        model = generator_file.metadata(pretrained.path(name))["config"]["model"]
        if models.FAMILIES[model["family"]].kind == "translator":
            found[name] = model["cycle"]["domains"]
    return found


def find(wanted: dict[str, int], device: torch.device, source: str | Path | None = None) -> list[Edit]:
    """The edits ``wanted`` asks for, in its order: each by ``source`` (a translator file,
    checkpoint, run directory or shipped name) when given, else by the shipped translator
    that knows its attribute. Refused, naming what exists, when none does."""
    from facegan import sample

    loaded: dict[Path, tuple[torch.nn.Module, str, int]] = {}

    def load(path: Path) -> tuple[torch.nn.Module, str, int]:
        if path not in loaded:
            translator, config, _ = sample.load_generator(path, device, "translator")
            loaded[path] = translator, config.model.family_settings.domains, config.model.resolution
        return loaded[path]

    edits = []
    if source is not None:
        path = sample.find_named(source, "translator")
        translator, domains, side = load(path)
        for attribute, value in wanted.items():
            to_b = direction(domains, attribute, value)
            if to_b is None:
                raise FaceganError(f"{path} edits {domains.replace(':', ' and ')} only, not {attribute}")
            edits.append(Edit(attribute, value, translator, to_b, path, side))
        return edits
    shipped = shipped_translators()
    for attribute, value in wanted.items():
        knowing = [name for name, domains in shipped.items() if direction(domains, attribute, value) is not None]
        if not knowing:
            offered = ", ".join(f"{name} ({domains.replace(':', ' <-> ')})" for name, domains in shipped.items())
            raise FaceganError(f"no shipped translator edits {attribute}; "
                               + (f"the shipped ones: {offered}" if offered else "facegan ships none yet")
                               + " (or give one: --translator RUN_OR_FILE)")
        from facegan import pretrained

        path = pretrained.path(knowing[0])
        translator, domains, side = load(path)
        edits.append(Edit(attribute, value, translator, direction(domains, attribute, value), path, side))
    return edits


def translate(translator: torch.nn.Module, images: np.ndarray, to_b: bool, device: torch.device,
              batch_size: int = 16) -> np.ndarray:
    """uint8 (N, S, S, 3) faces at the translator's size, translated A -> B (``to_b``) or B -> A."""
    return models.image_to_image(translator, images, device, batch_size, translator.direction(to_b))


def apply(edits: list[Edit], faces: np.ndarray, device: torch.device) -> np.ndarray:
    """``faces`` (uint8, at the edits' size) with every edit made, in order."""
    for edit in edits:
        if faces.shape[1:3] != (edit.resolution, edit.resolution):
            raise FaceganError(f"{edit.source} edits {edit.resolution} px faces, not {faces.shape[2]}x{faces.shape[1]}")
        faces = translate(edit.translator, faces, edit.to_b, device)
    return faces


def side_by_side(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Each face beside its edit: (N, S, 2S, 3)."""
    return np.concatenate([before, after], axis=2)
