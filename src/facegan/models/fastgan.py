"""The FastGAN generator (Liu, Zhu, Song, Elgammal, ICLR 2021): a light generator that
learns fast from few images, the one Projected GANs (Sauer et al. 2021) train with.

z (a 1x1 map) -> ConvTranspose 4x4 to 4x4 -> upsampling blocks [nearest x2, Conv 3x3,
BatchNorm, GLU] to the image size -> Conv 3x3 to RGB, tanh. GLU (a gated linear unit:
half of the channels gate the other half through a sigmoid) halves the channels each
conv makes. Skip-layer excitation (SLE) lets a small, early feature map rescale the
channels of a large, late one: pool the small map to 4x4, Conv 4x4 to 1x1, Swish,
Conv 1x1, sigmoid, then multiply. Each of the two largest maps is excited by the map a
sixteenth of its side (the paper's ratio), or by the 4x4 map where that is smaller: at
64 px the 4x4 map excites both 32x32 and 64x64; at 128 px 4x4 excites 64x64 and 8x8
excites 128x128.

Channels: ``width`` at the image size, doubling at each halving of the side, at most
16 x ``width``.

Conditioned on binary attributes (``conditions`` > 0), as the conditional DCGAN: the
labels are appended to z, and every batch norm takes its scale and shift from them
(facegan.models.conditioning).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from facegan.models.conditioning import ConditionalBatchNorm2d, run_layers, signs


class GLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * torch.sigmoid(b)


def norm(channels: int, conditions: int) -> nn.Module:
    return ConditionalBatchNorm2d(channels, conditions) if conditions else nn.BatchNorm2d(channels)


def up_block(channels_in: int, channels_out: int, conditions: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(channels_in, channels_out * 2, 3, 1, 1, bias=False),
                         norm(channels_out * 2, conditions), GLU())


class SkipExcitation(nn.Module):
    """Channel gains for a large feature map from a small one (SLE)."""

    def __init__(self, channels_small: int, channels_large: int):
        super().__init__()
        self.gains = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(channels_small, channels_large, 4, 1, 0, bias=False),
                                   nn.SiLU(), nn.Conv2d(channels_large, channels_large, 1, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, small: torch.Tensor, large: torch.Tensor) -> torch.Tensor:
        return large * self.gains(small)


def excitation_pairs(resolution: int) -> dict[int, int]:
    """{large side: small side} of each SLE."""
    return {side: max(4, side // 16) for side in (resolution, resolution // 2) if side > 4}


class FastGANGenerator(nn.Module):
    output_range = (-1.0, 1.0)

    def __init__(self, resolution: int = 64, z_dim: int = 100, width: int = 32, conditions: int = 0):
        super().__init__()
        self.z_dim, self.conditions = z_dim, conditions

        def channels(side: int) -> int:
            return width * min(16, resolution // side)

        self.start = nn.Sequential(nn.ConvTranspose2d(z_dim + conditions, channels(4) * 2, 4, 1, 0, bias=False),
                                   norm(channels(4) * 2, conditions), GLU())
        sides = [4 * 2**i for i in range(1, int(math.log2(resolution // 4)) + 1)]
        self.ups = nn.ModuleDict({str(s): up_block(channels(s // 2), channels(s), conditions) for s in sides})
        self.pairs = excitation_pairs(resolution)
        self.excite = nn.ModuleDict({str(large): SkipExcitation(channels(small), channels(large))
                                     for large, small in self.pairs.items()})
        self.to_rgb = nn.Sequential(nn.Conv2d(channels(resolution), 3, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1)
        if self.conditions:
            z = torch.cat([z, signs(labels)], dim=1)
        x = run_layers(self.start, z[:, :, None, None], labels)
        maps = {4: x}
        for side, block in self.ups.items():
            x = run_layers(block, x, labels)
            side = int(side)
            if side in self.pairs:
                x = self.excite[str(side)](maps[self.pairs[side]], x)
            maps[side] = x
        return self.to_rgb(x)
