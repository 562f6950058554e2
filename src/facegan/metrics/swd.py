"""Sliced Wasserstein distance between two sets of images, on small copies of them.

Each image is reduced (area average) to ``size`` x ``size`` and read as one vector of
pixels in [0, 1]. Both sets are projected on the same random unit directions; along
each direction the 1-D Wasserstein-1 distance is the mean gap between matching
quantiles. The figure is the mean over directions, times 100. It is 0 for identical
sets and grows as colours, layout and variety part ways. A cheap, honest check that
samples moved towards the data; FID (facegan.metrics, later) is the standard figure.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _vectors(images: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != size:
        x = F.adaptive_avg_pool2d(x, size)
    return x.flatten(1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, size: int = 16, directions: int = 512, seed: int = 0) -> float:
    """SWD x 100 between uint8 (N, H, W, 3) sets ``a`` and ``b`` (sizes may differ)."""
    va, vb = _vectors(a, size), _vectors(b, size)
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(va.shape[1], directions, generator=g)
    d /= d.norm(dim=0, keepdim=True)
    q = torch.linspace(0, 1, min(len(va), len(vb)))
    pa = torch.quantile(va @ d, q, dim=0)
    pb = torch.quantile(vb @ d, q, dim=0)
    return float((pa - pb).abs().mean() * 100)
