"""A generator on its own: its weights and what rebuilds it, in one file that runs no code.

A generator file is a safetensors file: the weights that make a run's faces (the moving
average where the run kept one), and in its metadata the run's settings, a conditional
model's attributes with their joint distribution, and optionally a model card's figures.
``facegan export`` writes one from a run or a checkpoint; the models shipped with
facegan (``facegan.pretrained``) are such files. Weights may be stored as fp16; they are
loaded as fp32.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from facegan import config as cfg
from facegan import configure, files
from facegan.conditions import Conditions
from facegan.errors import FaceganError

FORMAT = "facegan-generator"
VERSION = "1"
SUFFIX = ".safetensors"


def is_generator_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() == SUFFIX


def save(weights: dict[str, torch.Tensor], config: cfg.Config, conditions: Conditions | None, path: str | Path,
         half: bool = False, card: dict[str, Any] | None = None) -> None:
    """Write a generator file atomically; ``half`` stores floating-point weights as fp16."""
    from safetensors.torch import save as to_bytes

    def stored(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().to("cpu")
        return (t.half() if half and t.is_floating_point() else t).contiguous().clone()

    metadata = {"format": FORMAT, "version": VERSION, "config": json.dumps(config.to_dict()),
                "precision": "fp16" if half else "fp32"}
    if conditions is not None:
        metadata["conditions"] = json.dumps(conditions.state())
    if card is not None:
        metadata["card"] = json.dumps(card)
    blob = to_bytes({name: stored(t) for name, t in weights.items()}, metadata)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        files.atomic_write(path, lambda f: f.write(blob))
    except OSError as e:
        raise FaceganError(f"cannot write {path}: {files.describe(e, path.parent)}") from None


def metadata(path: str | Path) -> dict[str, Any]:
    """The file's settings, conditions, precision and card, from its header alone."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FaceganError(f"generator file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise FaceganError(f"{path} is truncated or corrupt, or not a safetensors file ({str(e)[:120]})") from None
    if header.get("format") != FORMAT:
        raise FaceganError(f"{path} is a safetensors file but not a facegan generator (no facegan metadata)")
    if header.get("version") != VERSION:
        raise FaceganError(f"generator file {path} has format version {header.get('version')}, this facegan reads {VERSION}")
    try:
        return {"config": json.loads(header["config"]), "precision": header.get("precision", "fp32"),
                "conditions": json.loads(header["conditions"]) if "conditions" in header else None,
                "card": json.loads(header["card"]) if "card" in header else None}
    except (KeyError, json.JSONDecodeError) as e:
        raise FaceganError(f"generator file {path} is damaged: its metadata does not parse ({e})") from None


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], cfg.Config, Conditions | None, dict[str, Any]]:
    """(weights as fp32 on the CPU, settings, conditions, metadata) of a generator file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    found = metadata(path)
    config = configure.from_dict(found["config"], str(path), model_only=True)
    try:
        weights = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise FaceganError(f"{path} is truncated or corrupt ({str(e)[:120]})") from None
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    conditions = Conditions.from_state(found["conditions"]) if found["conditions"] is not None else None
    return weights, config, conditions, found
