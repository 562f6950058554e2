"""Image plumbing shared by training and sampling: tensors to uint8, grids, PNG, GIF."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from facegan import files


def to_uint8(images: torch.Tensor, pixel_range: tuple[float, float]) -> np.ndarray:
    """Model outputs (N, 3, H, W) in ``pixel_range`` to uint8 (N, H, W, 3)."""
    lo, hi = pixel_range
    scaled = (images.detach().float().cpu() - lo) / (hi - lo)
    return (scaled.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile uint8 (N, H, W, 3) images into one picture, row by row, on a dark background."""
    n, h, w, _ = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    out = np.full((rows * (h + padding) + padding, columns * (w + padding) + padding, 3), 24, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        out[y : y + h, x : x + w] = image
    return out


def columns(parts: Sequence[np.ndarray]) -> np.ndarray:
    """One picture of side-by-side columns: uint8 (N, H, W, 3) arrays of the same N, row
    i holding image i of each."""
    rows = np.stack(parts, axis=1)
    return grid(rows.reshape(-1, *rows.shape[2:]), columns=len(parts))


def encode_png(image: np.ndarray) -> bytes:
    """A uint8 (H, W, 3) image as the bytes of a PNG file."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


def save_png(image: np.ndarray, path: str | Path) -> None:
    files.atomic_write(path, lambda f: f.write(encode_png(image)))


def save_gif(frames: Sequence[str | Path | Image.Image], path: str | Path, min_width: int = 512,
             frame_ms: int = 400) -> None:
    """An animation of PNG files (or pictures); small frames are enlarged (nearest) to at least ``min_width``.
    Each frame gets its own 256-colour palette by the fast octree method: Pillow's default
    (median cut) took 13x longer for the same frames."""
    pictures = [(f if isinstance(f, Image.Image) else Image.open(f)).convert("RGB") for f in frames]
    if not pictures:
        return
    factor = max(1, math.ceil(min_width / pictures[0].width))
    if factor > 1:
        pictures = [p.resize((p.width * factor, p.height * factor), Image.NEAREST) for p in pictures]
    pictures = [p.quantize(256, method=Image.Quantize.FASTOCTREE) for p in pictures]
    durations = [frame_ms] * (len(pictures) - 1) + [frame_ms * 5]  # linger on the last frame
    files.atomic_write(path, lambda f: pictures[0].save(f, format="GIF", save_all=True, append_images=pictures[1:],
                                                        duration=durations, loop=0))
