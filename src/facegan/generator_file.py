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
from facegan import files
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

    path = files.regular_file(path, "generator file")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise FaceganError(f"{path} is truncated or corrupt, or not a safetensors file ({str(e)[:120]})") from None
    if header.get("format") != FORMAT:
        raise FaceganError(f"{path} is a safetensors file but not a facegan generator (no facegan metadata)")
    if header.get("version") != VERSION:
        raise FaceganError(f"generator file {path} has format version {header.get('version')}, this facegan reads {VERSION}")
    if "config" not in header:
        raise FaceganError(f"generator file {path} is damaged: its metadata holds no settings")
    found = {"config": files.parse_json(header["config"], f"the settings in {path}"),
             "precision": header.get("precision", "fp32"),
             "conditions": (files.parse_json(header["conditions"], f"the attributes in {path}")
                            if "conditions" in header else None),
             "card_text": header.get("card")}
    if not isinstance(found["config"], dict) or not all(isinstance(v, dict) for v in found["config"].values()):
        raise FaceganError(f"generator file {path} is damaged: its settings are not a table of sections")
    return found


def card(path: str | Path) -> dict[str, Any] | None:
    """The model card's figures a generator file carries, if any (read only when asked:
    generating needs none of it)."""
    text = metadata(path)["card_text"]
    if text is None:
        return None
    found = files.parse_json(text, f"the model card in {path}")
    if not isinstance(found, dict):
        raise FaceganError(f"the model card in {path} is not a table of figures")
    return found


def stored(path: str | Path) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """The shape and type of every tensor in a generator file, from its header alone."""
    from safetensors import SafetensorError, safe_open

    dtypes = {"F16": torch.float16, "F32": torch.float32, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: (tuple(f.get_slice(name).get_shape()), dtypes.get(f.get_slice(name).get_dtype(), None))
                    for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise FaceganError(f"{path} is truncated or corrupt ({str(e)[:120]})") from None


def weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a generator file, as fp32 on the CPU (check ``stored`` first)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        found = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise FaceganError(f"{path} is truncated or corrupt ({str(e)[:120]})") from None
    return {k: v.float() if v.is_floating_point() else v for k, v in found.items()}
