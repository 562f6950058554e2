"""Checkpoints: the training state's one schema, written atomically, loaded without
running code, found by step.

``TrainingState`` is what a checkpoint of a run holds: the trainer writes it and
resumes from it, ``generate`` and ``evaluate`` read its generator. It sits below
``train/`` so that sampling and metrics read checkpoints without reaching up into the
trainer. ``save``/``load`` are the file format underneath, also used for other files
(the attribute classifier).

A checkpoint is a dict of tensors and plain values (no pickled classes), saved as
``checkpoints/step-00001234.pt``, through ``facegan.files.atomic_write``: a crash or a
full disk at any moment leaves either the old set of checkpoints or the new one, never
a half-written file under a real name. Loading uses ``torch.load(weights_only=True)``, which refuses any
pickle that would construct arbitrary objects or call functions.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from facegan import files
from facegan.errors import FaceganError

FORMAT = "facegan-checkpoint"
VERSION = 1
NAME = re.compile(r"^step-(\d{8,})\.pt$")


def name_for(step: int) -> str:
    return f"step-{step:08d}.pt"


def save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` atomically."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    files.atomic_write(path, lambda f: torch.save(payload, f))


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint, refusing anything that is not a complete facegan checkpoint."""
    path = files.regular_file(path, "checkpoint")
    if not zipfile.is_zipfile(path):  # every checkpoint torch writes is a zip archive
        raise FaceganError(f"checkpoint {path} is truncated or corrupt, or not a checkpoint at all "
                           "(it is not the zip archive PyTorch writes)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise FaceganError(f"checkpoint {path} was refused: it holds objects that could run code ({first[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise FaceganError(f"checkpoint {path} is truncated or corrupt ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise FaceganError(f"{path} is not a facegan checkpoint")
    if payload.get("version") != VERSION:
        raise FaceganError(f"checkpoint {path} has format version {payload.get('version')}, this facegan reads {VERSION}")
    return payload


def listing(folder: Path) -> list[Path]:
    """The checkpoints in ``folder``, oldest step first (temporary files are ignored)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest(folder: Path) -> Path | None:
    found = listing(folder)
    return found[-1] if found else None


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (keep=0 keeps all). A killed
    writer's temporaries are cleared at the next start (RunDir.clear_temporaries)."""
    if keep > 0:
        for old in listing(folder)[:-keep]:
            old.unlink(missing_ok=True)


@dataclass
class TrainingState:
    """A run after ``step`` steps: enough to go on bit for bit, or to make faces."""

    config: dict[str, Any]  # the run's settings (facegan.config.Config.to_dict())
    generator: dict[str, torch.Tensor]
    discriminator: dict[str, torch.Tensor]
    g_optimizer: dict[str, Any]
    d_optimizer: dict[str, Any]
    step: int
    epoch: int  # epochs finished
    position: int  # batches done in the current epoch
    rng: dict[str, Any]  # "torch" (and "cuda"): the global random states
    elapsed: float = 0.0  # seconds of training so far, over every session
    generator_ema: dict[str, torch.Tensor] | None = None  # the moving average, when the run keeps one
    conditions: dict[str, Any] | None = None  # a conditional model's attributes and their joint distribution
    world_size: int = 1  # processes that trained it together (facegan.train.distributed)

    @property
    def sampling_generator(self) -> dict[str, torch.Tensor]:
        """The weights that make the run's faces: the moving average if kept."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    def save(self, path: str | Path) -> None:
        save({f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "TrainingState":
        payload = load(path, map_location)
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in payload]
        if missing:
            raise FaceganError(f"{path} is not a training checkpoint: it holds no {missing[0]} "
                               "(is it an attribute classifier?)")
        for name, kinds in SHAPES.items():
            value = payload.get(name)
            if value is not None and not _is(value, kinds):
                raise FaceganError(f"checkpoint {path} is damaged: its {name} is a {type(value).__name__}, not "
                                   f"{WHAT.get(kinds, 'a number')}")
        return cls(**{f.name: payload[f.name] for f in fields(cls) if f.name in payload})


def _is(value: Any, kind: Any) -> bool:
    if kind == "weights":  # a state dict: names to tensors
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return isinstance(value, kind)


WHAT = {"weights": "weights (names to tensors)", dict: "a table", int: "a whole number of at least 0"}
# what each entry of a training checkpoint must be before anything uses it
SHAPES: dict[str, Any] = {"config": dict, "generator": "weights", "discriminator": "weights",
                          "generator_ema": "weights", "g_optimizer": dict, "d_optimizer": dict, "step": int,
                          "epoch": int, "position": int, "rng": dict, "elapsed": (int, float),
                          "conditions": dict, "world_size": int}
