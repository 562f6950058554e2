"""Layers shared by the Karras et al. families (progressive growing, style-based generators).

Equalised learning rate (ProGAN): weights are drawn N(0, 1) and multiplied by He's
constant at every pass rather than at initialisation, so Adam, which scales every
step to the gradient's size, moves every layer by the same relative amount.
``lr_multiplier`` slows a layer further (StyleGAN's mapping network learns at 0.01x).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EqualConv2d(nn.Module):
    """A convolution whose weights are N(0, 1) and scaled by He's constant at run time."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, gain: float = math.sqrt(2), bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels_out, channels_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(channels_out)) if bias else None
        self.scale = gain / math.sqrt(channels_in * kernel * kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)


class EqualLinear(nn.Module):
    def __init__(self, features_in: int, features_out: int, gain: float = math.sqrt(2), bias_init: float = 0.0,
                 lr_multiplier: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(features_out, features_in) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((features_out,), float(bias_init)))
        self.scale = gain / math.sqrt(features_in) * lr_multiplier
        self.lr_multiplier = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_multiplier)


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.2)


class MinibatchStd(nn.Module):
    """One more feature map: the mean standard deviation of the features over groups of
    up to 4 images, the same for every image of a group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = next(g for g in (4, 2, 1) if n % g == 0)
        spread = x.float().view(group, n // group, c, h, w).var(dim=0, unbiased=False).add(1e-8).sqrt()
        spread = spread.mean(dim=(1, 2, 3)).to(x.dtype).view(1, n // group, 1, 1, 1).expand(group, -1, 1, h, w)
        return torch.cat([x, spread.reshape(n, 1, h, w)], dim=1)


def sides(resolution: int) -> list[int]:
    """4, 8, ..., resolution."""
    return [4 * 2**i for i in range(int(math.log2(resolution // 4)) + 1)]


def widths(resolution: int, width: int) -> dict[int, int]:
    """Channels at each side: ``width`` at the full size, doubling at each halving, at most 8 x ``width``."""
    return {side: width * min(8, resolution // side) for side in sides(resolution)}
