"""The DCGAN paper's networks (Radford, Metz, Chintala 2015), as in pytorch/examples,
optionally conditioned on binary attributes.

Generator: z as a 1x1 map -> ConvTranspose 4x4 to 4x4 -> [ConvTranspose 4x4 s2 +
BatchNorm + ReLU] doubling the size, halving the channels -> ConvTranspose to RGB,
tanh. At 64 px with w=64: 512, 256, 128, 64 channels (3,576,704 parameters).

Discriminator: [Conv 4x4 s2 + (BatchNorm) + LeakyReLU(0.2)] from w channels, doubling,
down to 4x4 (no batch norm on the first layer) -> Conv 4x4 to one logit
(2,765,568 parameters at 64 px with w=64). With spectral normalisation the batch norms
are left out, as in SN-GAN.

Conditioned on ``conditions`` binary attributes (a CGAN; labels are 0/1 floats, shape
(N, conditions), seen by the networks as -1/+1):

- the generator reads the labels twice: appended to z, and in every batch norm, whose
  scale and shift become functions of the labels (conditional batch norm; de Vries et
  al. 2017, as in SN-GAN's and BigGAN's generators);
- the discriminator is a projection discriminator (Miyato & Koyama 2018): its logit is
  the unconditional one plus the inner product of the summed last features phi(x) with
  an embedding of the labels, sum_j s_j <v_j, phi(x)>. For one binary attribute this
  is exactly their projection for two classes (the shared part joins the
  unconditional term); for several it adds one such term per attribute.
  With ``attribute_head`` it also reads the attributes from phi(x) (one logit each,
  a linear layer): the auxiliary classifier of AC-GAN (Odena et al. 2017), trained by
  ``train.attribute_loss``; with ``attribute_head`` 2 also a twin reader (TAC-GAN,
  ``train.attribute_twin``), its logits after the first's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from facegan.conditions import attribute_names
from facegan.config import ModelConfig, setting
from facegan.models.conditioning import ConditionalBatchNorm2d, projection, run_layers, signs
from facegan.models.family import Family, dropout_setting, init_setting, initialise, spectral_normalise


@dataclass
class Settings:
    """[model.dcgan]"""

    d_dropout: float = dropout_setting()
    init: str = init_setting()
    d_spectral_norm: bool = setting(False, "spectral normalisation on every discriminator layer (replaces its "
                                           "batch norm)")


def stages(resolution: int) -> int:
    """Stride-2 layers between 4x4 and the image."""
    return int(math.log2(resolution // 4))


class DCGANGenerator(nn.Module):
    output_range = (-1.0, 1.0)

    def __init__(self, resolution: int = 64, z_dim: int = 100, width: int = 64, conditions: int = 0):
        super().__init__()
        n = stages(resolution)
        channels = width * 2 ** (n - 1)

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm2d(c, conditions) if conditions else nn.BatchNorm2d(c)

        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + conditions, channels, 4, 1, 0, bias=False),
            norm(channels),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                norm(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, 3, 4, 2, 1, bias=False), nn.Tanh()]
        self.z_dim, self.conditions = z_dim, conditions
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1)
        if not self.conditions:
            return self.body(z[:, :, None, None])
        return run_layers(self.body, torch.cat([z, signs(labels)], dim=1)[:, :, None, None], labels)


class DCGANDiscriminator(nn.Module):
    def __init__(self, resolution: int = 64, width: int = 64, dropout: float = 0.0, batch_norm: bool = True,
                 conditions: int = 0, attribute_head: int = 0):
        super().__init__()
        if attribute_head and not conditions:
            raise ValueError("an attribute head needs conditions")
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
        self.conditions = conditions
        self.body = nn.Sequential(*layers)
        if conditions:
            self.embed = nn.Linear(conditions, channels, bias=False)
        if attribute_head:
            self.read_attributes = nn.Linear(channels, conditions * attribute_head)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                attributes: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The logit of each image; with ``attributes``, also the head's attribute logits."""
        if not self.conditions:
            return self.body(x).view(-1)
        features = self.body[:-1](x)
        pooled = features.sum(dim=(2, 3))
        logits = self.body[-1](features).view(-1) + projection(self.embed, labels, pooled)
        return (logits, self.read_attributes(pooled)) if attributes else logits


def make_generator(m: ModelConfig) -> nn.Module:
    return DCGANGenerator(m.resolution, m.z_dim, m.g_width, len(attribute_names(m.attributes)))


def build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    s = m.family_settings
    conditions = len(attribute_names(m.attributes))
    generator = make_generator(m)
    discriminator = DCGANDiscriminator(m.resolution, m.d_width, s.d_dropout, batch_norm=not s.d_spectral_norm,
                                       conditions=conditions, attribute_head=attribute_head)
    for network in (generator, discriminator):
        initialise(network, s.init)
    if s.d_spectral_norm:
        spectral_normalise(discriminator)
    return generator, discriminator


FAMILY = Family("dcgan", "Radford et al.'s DCGAN (batch norm, tanh), optionally conditional (CGAN, projection D)",
                build, make_generator, min_resolution=8, settings=Settings, conditional=True)
