"""Making faces with a trained generator: load it from a checkpoint, sample, save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facegan import config as cfg
from facegan import images as imaging
from facegan import models
from facegan.errors import FaceganError
from facegan.train import checkpoint


def load_generator(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, cfg.Config]:
    """The generator of a checkpoint, rebuilt from the settings stored beside its weights:
    its moving average when the run kept one (train.ema_kimg), else the generator itself."""
    state = checkpoint.load(path, map_location=device)
    if "generator" not in state:
        raise FaceganError(f"{path} holds no generator (is it an attribute classifier?)")
    config = cfg.validate(cfg.from_dict(state["config"], str(path)))
    generator, _ = models.build(config.model)
    try:
        generator.load_state_dict(state.get("generator_ema", state["generator"]))
    except RuntimeError as e:
        raise FaceganError(f"checkpoint {path} does not fit its own model settings: {str(e).splitlines()[0]}") from None
    return generator.to(device).eval(), config


@torch.no_grad()
def generate(generator: torch.nn.Module, count: int, seed: int, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """``count`` images as uint8 (N, H, W, 3). The same seed gives the same faces on any device."""
    z = torch.randn(count, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    parts = [
        imaging.to_uint8(generator(z[i : i + batch_size].to(device)), generator.output_range)
        for i in range(0, count, batch_size)
    ]
    return np.concatenate(parts)


def save(images: np.ndarray, out: str | Path) -> list[Path]:
    """One grid when ``out`` ends in .png, else a folder of numbered PNGs."""
    out = Path(out)
    try:
        if out.suffix.lower() == ".png":
            out.parent.mkdir(parents=True, exist_ok=True)
            imaging.save_png(imaging.grid(images), out)
            return [out]
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / f"{i:06d}.png" for i in range(len(images))]
        for image, path in zip(images, paths):
            imaging.save_png(image, path)
        return paths
    except OSError as e:
        raise FaceganError(f"cannot write {out}: {e.strerror or e}") from None
