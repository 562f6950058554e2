"""An upscaler: a face at S px -> the same face at k*S px (k = 2 or 4), as the
super-resolution papers build it, sized for two CPU cores.

Generator (EDSR-style, Lim et al. 2017; the compact residual networks of Real-ESRGAN's
small models): a 3x3 convolution to ``g_width`` features, residual blocks of
conv-ReLU-conv without batch norm, a convolution, then per doubling a convolution to 4x
the features and a pixel shuffle (sub-pixel convolution, Shi et al. 2016), and a 3x3
convolution to RGB, added to the bilinear enlargement of the input. The last layer
starts at zero, so an untrained upscaler is bilinear interpolation and training learns
only the missing detail.

Discriminator (for the adversarial stage, SRGAN/ESRGAN): strided 3x3 convolutions with
LeakyReLU down to 8x8, then one logit per 8x8 patch position ((N, 64) logits).

Both take and give pixels in [-1, 1]. ``model.resolution`` is the output's size;
the input is ``resolution / scale``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegan.config import ModelConfig, setting
from facegan.figures import Figure
from facegan.models.family import Family


@dataclass
class Settings:
    """[model.srnet]"""

    scale: int = setting(2, "how many times wider the output is than the input (2 or 4)", (2, 4))
    blocks: int = setting(6, "residual blocks of the upscaler", (1, 64))
    patch: int = setting(32, "training crops: the low-res side of the random patch each image gives a step "
                             "(0, or at least the input's side: the whole image)", (0, 1024))
    pixel: float = setting(1.0, "weight of the pixel loss: mean absolute error (L1) to the real photo", (0, 1e6))
    perceptual: float = setting(0.0, "weight of the perceptual loss: L1 between the frozen EfficientNet-Lite0's "
                                     "features of the upscaled and the real face (facegan.train.upscaling); 0 = off",
                                (0, 1e6))
    adversarial: float = setting(0.0, "weight of the relativistic average adversarial loss against the patch "
                                      "critic (ESRGAN); 0 = off: the PSNR-oriented stage", (0, 1e6))


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class Upscaler(nn.Module):
    output_range = (-1.0, 1.0)
    z_dim = 0  # it takes images, not latents

    def __init__(self, resolution: int, width: int, blocks: int, scale: int):
        super().__init__()
        self.scale, self.resolution = scale, resolution
        self.input_resolution = resolution // scale
        self.head = nn.Conv2d(3, width, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))
        up: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            up += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2)]
        self.up = nn.Sequential(*up)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, low: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        base = F.interpolate(low, scale_factor=self.scale, mode="bilinear", align_corners=False)
        h = self.head(low)
        return base + self.tail(self.up(h + self.body(h)))


class PatchCritic(nn.Module):
    """Strided convolutions down to 8x8 (or the input's side / 16, when training on patches
    smaller than the model's resolution), one logit per position."""

    def __init__(self, width: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(0.2)]
        channels = width
        for i in range(4):
            out = min(width * 2 ** (i + 1), 8 * width)
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        layers += [nn.Conv2d(channels, 1, 3, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(images).flatten(1)


def _generator(m: ModelConfig) -> Upscaler:
    s: Settings = m.family_settings
    return Upscaler(m.resolution, m.g_width, s.blocks, s.scale)


def _build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    return _generator(m), PatchCritic(m.d_width)


def _check(m: ModelConfig) -> list[str]:
    s: Settings = m.family_settings
    problems = []
    if s.scale not in (2, 4):
        problems.append(f"model.srnet.scale must be 2 or 4, not {s.scale}")
    elif m.resolution % s.scale:
        problems.append(f"model.resolution must be divisible by model.srnet.scale, not {m.resolution} by {s.scale}")
    elif 0 < s.patch * s.scale < 16:
        problems.append(f"model.srnet.patch x scale must be at least 16 (the critic halves it four times), not "
                        f"{s.patch} x {s.scale}")
    return problems


FAMILY = Family("srnet", "upscaler: a face at S px -> k*S px (EDSR-style residual network, pixel shuffle)",
                _build, _generator, min_resolution=32, max_resolution=1024, settings=Settings, check=_check,
                kind="upscaler",
                blank_input=lambda m, n: torch.zeros(n, 3, m.resolution // m.family_settings.scale,
                                                     m.resolution // m.family_settings.scale),
                figures=(Figure("l1", "L1", "{:.4f}", panel="pixel error on training crops (L1)", progress=True,
                                colour=(52, 101, 164)),
                         Figure("psnr_train", "PSNR dB", "{:.2f}", panel="PSNR on training crops (dB, RGB)",
                                progress=True, colour=(214, 69, 65)),
                         Figure("perceptual", "perceptual", "{:.4f}", panel="perceptual loss (EfficientNet features, L1)",
                                progress=True, colour=(117, 80, 123))))
