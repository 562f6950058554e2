"""The 2022 thesis DCGAN: a Keras-style generator and discriminator without batch norm.

Generator: Dense(z -> 8*8*w) -> 8x8xw -> n x [ConvTranspose 4x4 s2 + LeakyReLU(0.2)]
with w*2^(n-1) ... w filters -> Conv 5x5 to RGB, sigmoid. At 128 px with w=128 the
filters are 1024, 512, 256, 128 (14,175,491 parameters).

Discriminator: n x [Conv 4x4 s2 + LeakyReLU(0.2)] with w ... w*2^(n-1) filters, down to
8x8 -> Flatten -> Dropout -> Dense(1). At 128 px with w=64 the filters are 64, 128,
256, 512 (2,789,313 parameters). It returns logits; the loss applies the sigmoid.

Keras 'same' padding for a 4x4 kernel at stride 2 pads one pixel on each side of an
even-sized input, which is PyTorch's padding=1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from facegan.config import ModelConfig
from facegan.models.family import Family, dropout_setting, init_setting, initialise


@dataclass
class Settings:
    """[model.thesis]"""

    d_dropout: float = dropout_setting()
    init: str = init_setting()


START = 8  # both networks meet at an 8x8 feature map


def stages(resolution: int) -> int:
    return int(math.log2(resolution // START))


class ThesisGenerator(nn.Module):
    output_range = (0.0, 1.0)

    def __init__(self, resolution: int = 128, z_dim: int = 128, width: int = 128):
        super().__init__()
        n = stages(resolution)
        self.z_dim, self.width = z_dim, width
        self.dense = nn.Linear(z_dim, START * START * width)
        layers: list[nn.Module] = []
        channels = width
        for i in range(n):
            out = width * 2 ** (n - 1 - i)
            layers += [nn.ConvTranspose2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        layers += [nn.Conv2d(channels, 3, 5, padding=2), nn.Sigmoid()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: None = None) -> torch.Tensor:
        """``labels``: always None; the thesis networks are unconditional (as every network, they take it)."""
        x = self.dense(z).view(-1, self.width, START, START)
        return self.body(x)


class ThesisDiscriminator(nn.Module):
    def __init__(self, resolution: int = 128, width: int = 64, dropout: float = 0.2):
        super().__init__()
        n = stages(resolution)
        layers: list[nn.Module] = []
        channels = 3
        for i in range(n):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels * START * START, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, labels: None = None) -> torch.Tensor:
        return self.body(x).view(-1)


def make_generator(m: ModelConfig) -> nn.Module:
    return ThesisGenerator(m.resolution, m.z_dim, m.g_width)


def build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    s = m.family_settings
    generator = make_generator(m)
    discriminator = ThesisDiscriminator(m.resolution, m.d_width, s.d_dropout)
    for network in (generator, discriminator):
        initialise(network, s.init)
    return generator, discriminator


FAMILY = Family("thesis", "the 2022 thesis's Keras DCGAN: no batch norm, sigmoid output in [0, 1]", build,
                make_generator, min_resolution=16, settings=Settings)
