"""What a conditional GAN is conditioned on: CelebA attribute names, the user's
``Name=1,Other=0`` requests, and the joint distribution of the attributes in the
training data, from which whatever the user leaves open is drawn.

numpy only: the command line parses and checks requests before importing torch.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from facegan.errors import FaceganError

# CelebA's 40 binary attributes, in the order of list_attr_celeba.txt
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)


def _known(name: str, what: str) -> None:
    if name not in CELEBA_ATTRIBUTES:
        close = difflib.get_close_matches(name, CELEBA_ATTRIBUTES, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else f" (CelebA's: {', '.join(CELEBA_ATTRIBUTES)})"
        raise FaceganError(f"{what}: unknown attribute {name}{hint}")


def attribute_names(text: str, what: str = "model.attributes") -> tuple[str, ...]:
    """``"Male,Smiling"`` -> ("Male", "Smiling"): CelebA names, each once."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        _known(name, what)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise FaceganError(f"{what}: {', '.join(twice)} named twice")
    return names


def requests(text: str, what: str = "--attr") -> dict[str, int]:
    """``"Male=1,Eyeglasses=0"`` -> {"Male": 1, "Eyeglasses": 0}."""
    wanted: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, equals, value = (s.strip() for s in part.partition("="))
        if not equals:
            raise FaceganError(f"{what}: {part!r} is not NAME=0 or NAME=1")
        _known(name, what)
        if value not in ("0", "1"):
            raise FaceganError(f"{what}: {name} must be 0 or 1, not {value!r}")
        if name in wanted:
            raise FaceganError(f"{what}: {name} is given twice")
        wanted[name] = int(value)
    if not wanted:
        raise FaceganError(f"{what} names no attribute (e.g. {what} Male=1,Smiling=0)")
    return wanted


@dataclass
class Conditions:
    """The attributes a model is conditioned on and their joint distribution in its
    training data: every distinct combination (row) and how many images had it."""

    names: tuple[str, ...]
    rows: np.ndarray  # uint8 (R, len(names)), distinct
    counts: np.ndarray  # int64 (R,)

    @classmethod
    def of(cls, names: tuple[str, ...], labels: np.ndarray) -> "Conditions":
        rows, counts = np.unique(np.asarray(labels, dtype=np.uint8), axis=0, return_counts=True)
        return cls(tuple(names), rows, counts.astype(np.int64))

    def state(self) -> dict[str, Any]:
        """For a checkpoint: plain lists and arrays, loadable without running code."""
        return {"names": list(self.names), "rows": self.rows.tolist(), "counts": self.counts.tolist()}

    @classmethod
    def from_state(cls, state: Any, origin: str = "the file") -> "Conditions":
        """As ``state`` wrote it, each part checked first: known attribute names, rows of
        0/1 of one value per name, one positive count per row."""
        def damaged(why: str) -> FaceganError:
            return FaceganError(f"{origin} is damaged: its attributes' distribution {why}")

        if not isinstance(state, dict) or not all(isinstance(state.get(k), list) for k in ("names", "rows", "counts")):
            raise damaged("is not names, rows and counts")
        names, rows, counts = state["names"], state["rows"], state["counts"]
        if not names or not all(isinstance(n, str) and n in CELEBA_ATTRIBUTES for n in names) or len(set(names)) < len(names):
            raise damaged("names no attributes, an unknown one, or one twice")
        if not rows or len(rows) != len(counts):
            raise damaged("has no rows, or not one count per row")
        if not all(isinstance(r, list) and len(r) == len(names) and all(v in (0, 1) and not isinstance(v, float)
                                                                          for v in r) for r in rows):
            raise damaged(f"has a row that is not {len(names)} values of 0 or 1")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
            raise damaged("has a count that is not a positive whole number")
        return cls(tuple(names), np.array(rows, dtype=np.uint8).reshape(-1, len(names)), np.array(counts, dtype=np.int64))

    def share(self, name: str) -> float:
        """The share of training images with ``name``."""
        return float(self.counts[self.rows[:, self.names.index(name)] == 1].sum() / self.counts.sum())

    def check(self, wanted: dict[str, int]) -> None:
        others = [n for n in wanted if n not in self.names]
        if others:
            raise FaceganError(f"the model was not trained on {', '.join(others)}; it knows {', '.join(self.names)}")

    def matching(self, wanted: dict[str, int]) -> int:
        """How many training images had every wanted value."""
        return int(self.counts[self._mask(wanted)].sum())

    def _mask(self, wanted: dict[str, int]) -> np.ndarray:
        mask = np.ones(len(self.rows), bool)
        for name, value in wanted.items():
            mask &= self.rows[:, self.names.index(name)] == value
        return mask

    def sample(self, n: int, seed: int, wanted: dict[str, int] | None = None) -> np.ndarray:
        """float32 0/1 labels (n, len(names)): the wanted values, the rest drawn from
        their joint distribution among training images with the wanted values. A
        combination no training image had gets the rest from their overall shares,
        each on its own."""
        wanted = wanted or {}
        self.check(wanted)
        rng = np.random.default_rng(seed)
        mask = self._mask(wanted)
        if mask.any():
            p = self.counts[mask] / self.counts[mask].sum()
            labels = self.rows[mask][rng.choice(int(mask.sum()), size=n, p=p)].astype(np.float32)
        else:
            shares = np.array([self.share(name) for name in self.names])
            labels = (rng.random((n, len(self.names))) < shares).astype(np.float32)
        for name, value in wanted.items():
            labels[:, self.names.index(name)] = value
        return labels
