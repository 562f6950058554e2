"""Faces made larger: the low-res copies an upscaler learns from, the classic
interpolations it is measured against, and an upscaler applied to uint8 images.

``shrink`` is the one downscaling of facegan's upscalers: Pillow's Lanczos filter, the
resize ``facegan prepare`` uses (``facegan.data.decode``), so an upscaler trained on
``shrink``'s copies of a 128 px cache sees inputs made the way a 64 px cache's faces were.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from facegan import models

INTERPOLATIONS = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS, "nearest": Image.NEAREST}


def resized(images: np.ndarray, side: int, method: str = "lanczos") -> np.ndarray:
    """uint8 (N, H, W, 3) images resized to side x side by Pillow's ``method``."""
    out = np.empty((len(images), side, side, 3), np.uint8)
    for i, image in enumerate(images):
        out[i] = np.asarray(Image.fromarray(image).resize((side, side), INTERPOLATIONS[method]))
    return out


def shrink(images: np.ndarray, factor: int) -> np.ndarray:
    """The low-res copies an upscaler learns from and is tested on: ``factor`` times smaller."""
    side = images.shape[1] // factor
    if side * factor != images.shape[1] or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square with a side divisible by {factor}, not {images.shape[1:3]}")
    return resized(images, side, "lanczos")


def upscale(upscaler: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 16) -> np.ndarray:
    """``upscaler``'s output for uint8 (N, h, w, 3) ``images`` at its input size."""
    return models.image_to_image(upscaler, images, device, batch_size)
