"""Training images: where they come from and how they are batched."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facegan.config import DataConfig
from facegan.data.synthetic import synthetic_faces
from facegan.errors import FaceganError


def load_images(data: DataConfig, resolution: int) -> np.ndarray:
    """The training set as uint8 (N, resolution, resolution, 3).

    An empty ``data.data`` draws the built-in synthetic faces; otherwise the path is a
    uint8 .npy array of that shape (read memory-mapped).
    """
    if not data.data:
        return synthetic_faces(data.synthetic_count, resolution, data.synthetic_seed)
    path = Path(data.data)
    if path.suffix != ".npy":
        raise FaceganError(f"data {path}: expected a .npy array of uint8 images (N, H, W, 3)")
    try:
        images = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise FaceganError(f"cannot read data {path}: {e}") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise FaceganError(f"data {path} holds {images.dtype} {images.shape}, expected uint8 (N, H, W, 3)")
    if images.shape[1:3] != (resolution, resolution):
        raise FaceganError(
            f"data {path} has {images.shape[1]}x{images.shape[2]} images but the model makes "
            f"{resolution}x{resolution}"
        )
    return images
