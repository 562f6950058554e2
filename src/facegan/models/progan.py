"""Progressive growing (Karras, Aila, Laine, Lehtinen, ICLR 2018): ProGAN's networks.

Training starts with small images and adds a stage (twice the side) at a time, so the
networks first learn the layout of a face from a few pixels, cheaply, and spend the
expensive full-size steps only on detail. A new stage fades in: its output is blended
with the upsampled output of the stage below, the weight ``alpha`` rising from 0 to 1
over ``model.grow_kimg`` thousand images; then it trains alone (stable) for as many
images before the next stage fades in. ``growth`` turns images seen into that level.

Both networks hold every stage from the start, so a checkpoint's shapes never change;
the trainer tells them how far training is (``grow_to``) before each step, and they
record it in a buffer (``level``), so a checkpoint or generator file made mid-fade
samples as it trained. The generator always returns full-size images (a smaller stage's
output is enlarged, nearest neighbour) and the discriminator always takes them (it
averages them down to its current stage): data, augmentation, sample grids and
evaluation see one image size throughout.

The paper's other three ideas, each against a way its GANs failed:

- equalised learning rate: weights are drawn N(0, 1) and scaled by He's constant at
  every pass, so Adam's step is the same relative size for every layer;
- pixel norm in G: each pixel's feature vector is scaled to unit length after every
  convolution, which keeps G's and D's magnitudes from escalating;
- minibatch standard deviation in D: the spread of features across a group of images
  is one more feature map, so a generator making one face over and over is seen.

Between stages G doubles its feature maps by copying each pixel (``model.upsample =
"nearest"``, the paper's choice and the presets') or by interpolating (``"bilinear"``,
StyleGAN's). At the narrow widths these machines afford, copying leaves faces crossed by
blocky stripes; interpolating removes them but, at 128 px, ended in smeared, alike heads
(docs/experiments.md, round 14). Images smaller than the full size are always enlarged
by copying, which the discriminator's averaging undoes exactly.

Sized for CPUs: ``width`` channels at the full size, doubling at each halving of the
side, at most 8 x ``width`` (the paper: 512 at 4-32 px, halving above). The paper's
WGAN-GP loss is replaced by the non-saturating loss with R1, as StyleGAN did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegan.config import ModelConfig, setting
from facegan.figures import Figure
from facegan.models.family import Family, Growth
from facegan.models.layers import EqualConv2d, EqualLinear, MinibatchStd, lrelu, pixel_norm, sides, widths

UPSAMPLING = ("nearest", "bilinear")  # upsample: how G doubles its feature maps between stages


@dataclass
class Settings:
    """[model.progan]"""

    grow_from: int = setting(8, "side of the first stage; each later stage doubles it", (4, 1024))
    grow_kimg: float = setting(20.0, "thousands of images over which each new stage fades in, and as many again "
                                     "before the next one", (0, 1e6))
    upsample: str = setting("nearest", "how G doubles its feature maps from stage to stage: nearest (the paper) "
                                       "or bilinear (StyleGAN's choice)", choices=UPSAMPLING)


def growth(images_seen: float, stages: int, grow_kimg: float) -> float:
    """How far growing is after ``images_seen``: level 0 is the first stage; level s + a
    (0 < a < 1) fades stage s + 1 in with weight a; ``stages`` is fully grown. Each new
    stage fades in over ``grow_kimg`` thousand images, then trains alone for as many."""
    phase = images_seen / (grow_kimg * 1000)
    whole = math.floor(phase)
    level = whole / 2 if whole % 2 == 0 else (whole - 1) / 2 + (phase - whole)
    return min(float(stages), level)


class Growing(nn.Module):
    """The level shared by both networks: a buffer (saved with the weights) and the
    Python values the forward pass branches on (so compiled graphs see constants)."""

    def __init__(self, resolution: int, grow_from: int, grow_kimg: float):
        super().__init__()
        self.resolution, self.grow_from, self.grow_kimg = resolution, grow_from, grow_kimg
        self.stages = int(math.log2(resolution // grow_from))
        self.register_buffer("level", torch.zeros(()))
        self.register_buffer("alpha", torch.ones(()), persistent=False)
        self.register_load_state_dict_post_hook(lambda module, keys: module.set_level(float(module.level)))
        self.set_level(0.0)

    def set_level(self, level: float) -> None:
        top = math.ceil(level)
        self.top = self.grow_from * 2**top  # the side of the newest stage in use
        self.fading = top != level  # its fade-in is not over
        self.grown = level >= self.stages
        self.level.fill_(level)
        self.alpha.fill_(level - math.floor(level) if self.fading else 1.0)

    def average_half_life_limit(self) -> float:
        """The longest half-life, in images, a moving average of this network may have now:
        while it grows, a sixth of a phase (``grow_kimg``), so that within one phase the
        average keeps under 2% of where the phase began, a new stage's random start
        included; fully grown, no limit."""
        return math.inf if self.grown else self.grow_kimg * 1000 / 6

    def grow_to(self, images_seen: int) -> None:
        """Set the level the schedule gives after ``images_seen`` training images."""
        self.set_level(growth(images_seen, self.stages, self.grow_kimg))

    def growth_figures(self) -> dict[str, float]:
        """For the training log: the level, and the side of the newest stage in use."""
        return {"level": round(float(self.level), 4), "stage_px": self.top}


class ProGANGenerator(Growing):
    output_range = (-1.0, 1.0)  # linear output: values outside are clipped when shown

    def __init__(self, resolution: int = 128, z_dim: int = 128, width: int = 16, grow_from: int = 8,
                 grow_kimg: float = 20.0, upsample: str = "nearest"):
        super().__init__(resolution, grow_from, grow_kimg)
        self.z_dim, self.upsample = z_dim, upsample
        c = widths(resolution, width)
        self.project = EqualLinear(z_dim, c[4] * 16, gain=math.sqrt(2) / 4)
        self.start = EqualConv2d(c[4], c[4], 3)
        self.blocks = nn.ModuleDict({str(s): nn.ModuleList([EqualConv2d(c[s // 2], c[s], 3), EqualConv2d(c[s], c[s], 3)])
                                     for s in sides(resolution)[1:]})
        self.to_rgb = nn.ModuleDict({str(s): EqualConv2d(c[s], 3, 1, gain=1.0)
                                     for s in sides(resolution) if s >= grow_from})

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = self.project(pixel_norm(z.reshape(z.shape[0], -1))).view(z.shape[0], -1, 4, 4)
        x = pixel_norm(lrelu(self.start(pixel_norm(lrelu(x)))))
        below = None
        for side in sides(self.top)[1:]:
            if side == self.top:
                below = x
            x = F.interpolate(x, scale_factor=2, mode=self.upsample)
            for conv in self.blocks[str(side)]:
                x = pixel_norm(lrelu(conv(x)))
        image = self.to_rgb[str(self.top)](x)
        if self.fading:
            previous = F.interpolate(self.to_rgb[str(self.top // 2)](below), scale_factor=2, mode="nearest")
            image = torch.lerp(previous, image, self.alpha.to(image.dtype))
        if self.top < self.resolution:
            image = F.interpolate(image, scale_factor=self.resolution // self.top, mode="nearest")
        return image


class ProGANDiscriminator(Growing):
    def __init__(self, resolution: int = 128, width: int = 16, grow_from: int = 8, grow_kimg: float = 20.0):
        super().__init__(resolution, grow_from, grow_kimg)
        c = widths(resolution, width)
        self.from_rgb = nn.ModuleDict({str(s): EqualConv2d(3, c[s], 1)
                                       for s in sides(resolution) if s >= grow_from})
        self.blocks = nn.ModuleDict({str(s): nn.ModuleList([EqualConv2d(c[s], c[s], 3), EqualConv2d(c[s], c[s // 2], 3)])
                                     for s in sides(resolution)[1:]})
        self.spread = MinibatchStd()
        self.last_conv = EqualConv2d(c[4] + 1, c[4], 3)
        self.dense = EqualLinear(c[4] * 16, c[4])
        self.logit = EqualLinear(c[4], 1, gain=1.0)

    def gradient_scale(self) -> float:
        """R1 measures D's gradient at the full-size images it is given; at a stage of
        side s it looks at them averaged down by k = resolution / s, which divides the
        squared gradient norm by k^2. This factor undoes that (the family's ``Growth``)."""
        return float((self.resolution // self.top) ** 2)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = F.avg_pool2d(images, self.resolution // self.top) if self.top < self.resolution else images
        h = lrelu(self.from_rgb[str(self.top)](x))
        for side in reversed(sides(self.top)[1:]):
            for conv in self.blocks[str(side)]:
                h = lrelu(conv(h))
            h = F.avg_pool2d(h, 2)
            if side == self.top and self.fading:
                skipped = lrelu(self.from_rgb[str(side // 2)](F.avg_pool2d(x, 2)))
                h = torch.lerp(skipped, h, self.alpha.to(h.dtype))
        h = lrelu(self.last_conv(self.spread(h)))
        return self.logit(lrelu(self.dense(h.flatten(1)))).view(-1)


def make_generator(m: ModelConfig) -> nn.Module:
    s = m.family_settings
    return ProGANGenerator(m.resolution, m.z_dim, m.g_width, s.grow_from, s.grow_kimg, s.upsample)


def build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    s = m.family_settings
    return make_generator(m), ProGANDiscriminator(m.resolution, m.d_width, s.grow_from, s.grow_kimg)


def problems(m: ModelConfig) -> list[str]:
    s, found = m.family_settings, []
    if not (4 <= s.grow_from <= m.resolution and math.log2(s.grow_from).is_integer()):
        found.append(f"model.progan.grow_from must be a power of two from 4 to model.resolution ({m.resolution}), "
                     f"not {s.grow_from}")
    if s.grow_kimg <= 0:
        found.append(f"model.progan.grow_kimg must be above 0, not {s.grow_kimg:g}")
    return found


FAMILY = Family(
    "progan", "Karras et al.'s progressive growing (fade-in, equalised lr, pixel norm, minibatch std)",
    build, make_generator, min_resolution=8, settings=Settings, check=problems,
    growth=Growth(grow_to=Growing.grow_to, figures=Growing.growth_figures,
                  gradient_scale=ProGANDiscriminator.gradient_scale,
                  average_half_life_limit=Growing.average_half_life_limit),
    figures=(Figure("stage_px", "stage", "{:.0f} px", progress=True),
             Figure("level", "growth level", "{:.2f}", panel="growth: level (stage s fades in between s - 1 and s)",
                    progress=True, colour=(117, 80, 123))))
