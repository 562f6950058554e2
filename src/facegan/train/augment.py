"""Differentiable augmentation (DiffAugment; Zhao et al. 2020) for small data sets.

The discriminator sees every image, real or generated, through the same family of
random transforms, and the generator's gradient flows back through them. D can then no
longer memorise the few real images it has, while G is not taught to make augmented
faces (it never is compared with un-augmented ones). Each policy is drawn afresh for
every image of every batch:

- ``color``: brightness shift in [-0.5, 0.5], saturation scale in [0, 2], contrast
  scale in [0.5, 1.5] (on images in [-1, 1], as the paper);
- ``translation``: a shift of up to 1/8 of the side in each direction, zeros (mid-grey)
  shifted in;
- ``cutout``: one square of half the side set to zero (mid-grey), at a random place.

Images are float NCHW in the generator's output range; ranges other than [-1, 1] are
mapped there and back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facegan.errors import FaceganError


def _uniform(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * (hi - lo) + lo


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + _uniform(x, -0.5, 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its side; what moves in is zero."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - dy  # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - dx
    padded = F.pad(x, [1, 1, 1, 1])  # index 0 and the last index read zeros
    rows = rows.clamp(-1, h).add(1).expand(n, h, w)
    cols = cols.clamp(-1, w).add(1).expand(n, h, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of ``ratio`` of the side per image, its centre anywhere in the image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch) & (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def policies(text: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ("color", "translation"), refusing unknown names."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in names if p not in TRANSFORMS]
    if unknown:
        raise FaceganError(f"train.augment: unknown augmentation {', '.join(unknown)} (known: {', '.join(TRANSFORMS)})")
    return names


def augment(x: torch.Tensor, policies: tuple[str, ...], output_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """``x`` through each policy in turn; the identity when ``policies`` is empty."""
    if not policies:
        return x
    lo, hi = output_range
    x = (x - lo) / (hi - lo) * 2 - 1
    for name in policies:
        x = TRANSFORMS[name](x)
    return (x + 1) / 2 * (hi - lo) + lo
