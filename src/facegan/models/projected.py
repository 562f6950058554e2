"""The projected discriminator (Sauer, Chitta, Müller, Geiger, NeurIPS 2021): D judges
images through a frozen ImageNet network instead of learning features from scratch.

    image (resized to ``feature_resolution``) -> EfficientNet-Lite0, frozen ->
    four feature maps (1/4, 1/8, 1/16, 1/32 of the side) ->
    cross-channel mixing: a random 1x1 convolution per map ->
    cross-scale mixing: each map plus the mixed map below it, upsampled, through a
    random 1x1 convolution ->
    one small discriminator head per map (strided 4x4 convolutions with spectral norm,
    batch norm and LeakyReLU, down to at most 4x4, then one logit per patch).

The random mixing layers are drawn once, at construction (so seeded like every
weight), and never trained: they spread each ImageNet feature over many channels, so
that no head can lean on a few features (the paper's answer to D latching onto one
cue). They are buffers: saved in checkpoints, moved with the network, not optimised.
The feature network is not even a submodule: it is the same file for every run, kept
out of ``parameters()``, ``state_dict()`` and train/eval switches (it always runs in
inference mode), and moved to the device with the discriminator.

The logits of all heads' patches are returned side by side, (N, patches): the losses
average over them.

Conditioned on binary attributes (``model.attributes``), the generator is the
conditional FastGAN and each head adds the projection term (Miyato & Koyama 2018) of
its last features (averaged over positions, divided by the square root of their
channels) with its own embedding of the labels (spectrally normalised, as BigGAN's),
as the conditional DCGAN's discriminator does with its one set of features. With
``attribute_head`` D also reads the attributes from all heads' summed features
(AC-GAN, for ``train.attribute_loss``); with ``attribute_head`` 2 it has a second,
twin reader beside it (TAC-GAN, ``train.attribute_twin``), its logits after the
first's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as sn

from facegan.conditions import attribute_names
from facegan.config import ModelConfig, setting
from facegan.models import efficientnet
from facegan.models.conditioning import projection
from facegan.models.family import Family, initialise
from facegan.models.fastgan import FastGANGenerator

MIXED_CHANNELS = (64, 128, 256, 512)  # channels of each scale after cross-channel mixing


@dataclass
class Settings:
    """[model.projected]"""

    d_feature_resolution: int = setting(0, "side of the images the frozen feature network sees (they are resized "
                                           "to it); 0 = the image size", (0, 256))


def random_projection(channels_out: int, channels_in: int) -> torch.Tensor:
    """A fixed 1x1 convolution weight, uniform with variance 1 / channels_in, so that
    mixing keeps the features' scale."""
    bound = math.sqrt(3 / channels_in)
    return torch.empty(channels_out, channels_in, 1, 1).uniform_(-bound, bound)


def head(channels: int, side: int, width: int) -> nn.Sequential:
    """Strided convolutions from a ``side`` x ``side`` map down to at most 4x4, then a
    patch logit per position of a final (up to) 4x4 convolution."""
    layers: list[nn.Module] = []
    out = width
    while side > 4:
        layers += [sn(nn.Conv2d(channels, out, 4, 2, 1, bias=False)), nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
        channels, side, out = out, side // 2, min(out * 2, width * 8)
    layers.append(sn(nn.Conv2d(channels, 1, min(side, 4), 1, 0)))
    return nn.Sequential(*layers)


class ProjectedDiscriminator(nn.Module):
    def __init__(self, resolution: int = 64, width: int = 64, feature_resolution: int = 0, conditions: int = 0,
                 attribute_head: int = 0):
        super().__init__()
        if attribute_head and not conditions:
            raise ValueError("an attribute head needs conditions")
        self.feature_resolution = feature_resolution or resolution
        self.__dict__["backbone"] = efficientnet.pretrained()  # not a submodule: see the module's docstring
        sides = [self.feature_resolution // 2**k for k in (2, 3, 4, 5)]
        inputs = efficientnet.FEATURE_CHANNELS
        for k, (c_in, c_out) in enumerate(zip(inputs, MIXED_CHANNELS)):
            self.register_buffer(f"mix_channels_{k}", random_projection(c_out, c_in))
            if k + 1 < len(inputs):
                self.register_buffer(f"mix_scales_{k}", random_projection(c_out, MIXED_CHANNELS[k + 1]))
        self.heads = nn.ModuleList(head(c, side, width) for c, side in zip(MIXED_CHANNELS, sides))
        self.conditions = conditions
        if conditions:
            last = [h[-1].in_channels for h in self.heads]  # the channels each head's logit is made from
            # spectral norm bounds the projection term as it bounds the heads (BigGAN does the same)
            self.embeds = nn.ModuleList(sn(nn.Linear(conditions, c, bias=False)) for c in last)
        if attribute_head:
            self.read_attributes = nn.Linear(sum(last), conditions * attribute_head)

    def _apply(self, fn, recurse: bool = True):
        self.__dict__["backbone"]._apply(fn, recurse)  # .to(device), .to(memory_format=...), .half() ...
        return super()._apply(fn, recurse)

    def frozen_parameter_count(self) -> int:
        """The feature network's weights and the random mixing layers: used, never trained."""
        return (sum(p.numel() for p in self.__dict__["backbone"].feature_parameters())
                + sum(b.numel() for name, b in self.named_buffers() if name.startswith("mix_")))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The mixed multi-scale features of images in [-1, 1]."""
        if images.shape[-1] != self.feature_resolution:
            images = F.interpolate(images, size=self.feature_resolution, mode="bilinear", align_corners=False)
        maps = self.__dict__["backbone"].features(images)
        mixed = [F.conv2d(m, getattr(self, f"mix_channels_{k}")) for k, m in enumerate(maps)]
        for k in range(len(mixed) - 2, -1, -1):  # from the coarsest up
            below = F.interpolate(mixed[k + 1], size=mixed[k].shape[-2:], mode="bilinear", align_corners=False)
            mixed[k] = mixed[k] + F.conv2d(below, getattr(self, f"mix_scales_{k}"))
        return mixed

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                attributes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The logits of each image's patches; with ``attributes``, also the attribute logits."""
        if not self.conditions:
            return torch.cat([h(m).flatten(1) for h, m in zip(self.heads, self.features(images))], dim=1)
        logits, pooled = [], []
        for h, embed, m in zip(self.heads, self.embeds, self.features(images)):
            last = h[:-1](m)
            pooled.append(last.sum(dim=(2, 3)))
            # averaged over positions and scaled by 1/sqrt(channels), as Projected GAN's and
            # StyleGAN2-ADA's conditional heads do: summed, the term grew to hundreds and
            # swamped the heads' own logits (hinge loss of D near 40 after one epoch)
            balanced = pooled[-1] / (last.shape[2] * last.shape[3] * last.shape[1] ** 0.5)
            logits.append(h[-1](last).flatten(1) + projection(embed, labels, balanced)[:, None])
        logits = torch.cat(logits, dim=1)
        return (logits, self.read_attributes(torch.cat(pooled, dim=1))) if attributes else logits


def make_generator(m: ModelConfig) -> nn.Module:
    return FastGANGenerator(m.resolution, m.z_dim, m.g_width, len(attribute_names(m.attributes)))


def build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    conditions = len(attribute_names(m.attributes))
    generator = make_generator(m)
    initialise(generator, "dcgan_normal")  # as FastGAN does; the heads keep PyTorch's (spectral norm) init
    return generator, ProjectedDiscriminator(m.resolution, m.d_width, m.family_settings.d_feature_resolution,
                                             conditions, attribute_head)


def check(m: ModelConfig) -> list[str]:
    f = m.family_settings.d_feature_resolution
    if f and not (32 <= f <= 256 and math.log2(f).is_integer()):
        return [f"model.projected.d_feature_resolution must be 0 (the image size) or a power of two from 32 to 256, "
                f"not {f}"]
    return []


FAMILY = Family("projected", "a FastGAN generator against a projected discriminator (frozen ImageNet "
                "EfficientNet-Lite0 features, random mixing, multi-scale heads)", build,
                make_generator, min_resolution=32, settings=Settings, conditional=True, check=check,
                frozen_parameters=ProjectedDiscriminator.frozen_parameter_count)
