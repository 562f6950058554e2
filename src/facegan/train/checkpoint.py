"""Checkpoints: written atomically, loaded without running code, found by step.

A checkpoint is a dict of tensors and plain values (no pickled classes), saved as
``checkpoints/step-00001234.pt``. It is first written to a temporary file in the same
folder, flushed to disk, then renamed over its final name, so a crash at any moment
leaves either the old set of checkpoints or the new one, never a half-written file
under a real name. Loading uses ``torch.load(weights_only=True)``, which refuses any
pickle that would construct arbitrary objects or call functions.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from facegan.errors import FaceganError

FORMAT = "facegan-checkpoint"
VERSION = 1
NAME = re.compile(r"^step-(\d{8,})\.pt$")


def name_for(step: int) -> str:
    return f"step-{step:08d}.pt"


def save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename, fsync folder)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with open(temporary, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint, refusing anything that is not a complete facegan checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FaceganError(f"checkpoint {path} does not exist")
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
    """Delete all but the newest ``keep`` checkpoints (keep=0 keeps all) and stale temporaries."""
    for stale in folder.glob(".step-*.pt.partial"):
        stale.unlink(missing_ok=True)
    if keep > 0:
        for old in listing(folder)[:-keep]:
            old.unlink(missing_ok=True)
