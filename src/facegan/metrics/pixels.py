"""How close an image is to the photo it should be, pixel by pixel: PSNR and SSIM, as
super-resolution papers report them, on the luminance (Y of ITU-R BT.601 YCbCr, 16-235)
of uint8 RGB images."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def luminance(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) RGB -> float64 (N, H, W) Y in [16, 235]."""
    rgb = images.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def psnr(made: np.ndarray, real: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (peak 255), per image, averaged."""
    error = ((luminance(made) - luminance(real)) ** 2).reshape(len(real), -1).mean(axis=1)
    return float(np.mean(10 * np.log10(255.0**2 / np.maximum(error, 1e-10))))


def ssim(made: np.ndarray, real: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: an 11x11 Gaussian window, sigma 1.5), per
    image, averaged over the positions the window fits and over images."""
    x = torch.from_numpy(luminance(made))[:, None]
    y = torch.from_numpy(luminance(real))[:, None]
    axis = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(axis**2) / (2 * 1.5**2))
    g = g / g.sum()
    rows, columns = g.view(1, 1, 1, 11), g.view(1, 1, 11, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # the 11x11 Gaussian as two passes of 11 (5x fewer products)
        return F.conv2d(F.conv2d(t, rows), columns)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(index.mean(dim=(1, 2, 3)).mean())
