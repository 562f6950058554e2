"""The DCGAN paper's networks (Radford, Metz, Chintala 2015), as in pytorch/examples.

Generator: z as a 1x1 map -> ConvTranspose 4x4 to 4x4 -> [ConvTranspose 4x4 s2 +
BatchNorm + ReLU] doubling the size, halving the channels -> ConvTranspose to RGB,
tanh. At 64 px with w=64: 512, 256, 128, 64 channels (3,576,704 parameters).

Discriminator: [Conv 4x4 s2 + (BatchNorm) + LeakyReLU(0.2)] from w channels, doubling,
down to 4x4 (no batch norm on the first layer) -> Conv 4x4 to one logit
(2,765,568 parameters at 64 px with w=64). With spectral normalisation the batch norms
are left out, as in SN-GAN.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def stages(resolution: int) -> int:
    """Stride-2 layers between 4x4 and the image."""
    return int(math.log2(resolution // 4))


class DCGANGenerator(nn.Module):
    output_range = (-1.0, 1.0)

    def __init__(self, resolution: int = 64, z_dim: int = 100, width: int = 64):
        super().__init__()
        n = stages(resolution)
        channels = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, channels, 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.z_dim = z_dim
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int = 64, width: int = 64, dropout: float = 0.0, batch_norm: bool = True):
        super().__init__()
        n = stages(resolution)
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        channels = width
        for _ in range(n - 1):
            layers.append(nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=False))
            if batch_norm:
                layers.append(nn.BatchNorm2d(channels * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            channels *= 2
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Conv2d(channels, 1, 4, 1, 0, bias=False))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).view(-1)
