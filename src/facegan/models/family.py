"""What a model family declares, and the helpers families share.

A family is one module in ``facegan.models`` that ends with ``FAMILY = Family(...)``;
the registry (``facegan.models.FAMILIES``) finds it there, so adding a family is that
module and a preset in ``facegan/presets``, nothing else. The record says everything
the rest of facegan asks of a family:

- its builders: both networks for training, the generator alone for sampling;
- its own settings: a dataclass of ``facegan.config.setting`` fields (help, ranges,
  choices), read from the TOML table ``[model.<name>]`` and given as flags, found in
  ``model.family_settings`` by its builders;
- the resolutions it supports, whether it takes labels, further checks of its settings;
- its optional capabilities, each a typed record of functions of its networks, or None:
  ``growth`` (networks that grow during training), ``mapping`` (a generator with a
  mapping network: truncation, style mixing, the path-length penalty);
- the figures it adds to the training log (``figures``) and how to count weights its
  discriminator uses but never trains (``frozen_parameters``);
- its kind (``facegan.train.kinds``: generator, upscaler or translator) and the CelebA
  labels its training reads (``data_attributes``).

Nothing outside the family's module probes its networks for attributes: the trainer,
the moving average, the steps, the sampler and the CLI ask the record.

Every network is called ``net(input, labels)``: ``labels`` is None for an unconditional
network and a (N, attributes) 0/1 tensor for a conditional one. A generator has
``z_dim`` and ``output_range`` ((lo, hi) of its pixels); a discriminator returns logits,
one per image or (N, patches), which the losses average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
from torch import nn

from facegan.conditions import attribute_names
from facegan.config import ModelConfig, setting
from facegan.figures import Figure

INIT_SCHEMES = ("dcgan_normal", "glorot_uniform")  # the init setting, for the families that have it (see initialise)


class Generator(Protocol):
    z_dim: int
    output_range: tuple[float, float]

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


class Discriminator(Protocol):
    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class Growth:
    """Networks that grow during training (progressive growing): both hold every stage
    from the start; training tells them how far it is."""

    grow_to: Callable[[nn.Module, int], None]
    """(network, images seen): set the stage training has reached (G, D and G's average)."""
    figures: Callable[[nn.Module], dict[str, float]]
    """Where the generator is, for the training log (named by the family's ``figures``)."""
    gradient_scale: Callable[[nn.Module], float]
    """The discriminator's R1 factor now (it may judge images at a smaller size)."""
    average_half_life_limit: Callable[[nn.Module], float]
    """The longest half-life, in images, a moving average of the generator may have now."""


@dataclass(frozen=True)
class Mapping:
    """A generator with a mapping network z -> w (StyleGAN): its forward pass takes
    ``truncation`` (psi, 1 = none); styles can be mixed; it has a path-length penalty."""

    style_inputs: Callable[[nn.Module], int]
    """How many style inputs (w's) the generator's layers take: the bounds of mixing."""
    mixed: Callable[[nn.Module, torch.Tensor, torch.Tensor, int, float], torch.Tensor]
    """(G, z_coarse, z_fine, from_layer, truncation): z_coarse's styles before the layer, z_fine's from it."""
    path_length_penalty: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    """(G, z): StyleGAN2's path-length penalty of those latents (``train.pl_weight``)."""


@dataclass
class NoSettings:
    """The settings of a family that has none of its own."""


@dataclass(frozen=True)
class Family:
    name: str
    summary: str  # one line for --help and docs
    build: Callable[[ModelConfig, int], tuple[nn.Module, nn.Module]]  # (settings, attribute readers) -> (G, D)
    generator: Callable[[ModelConfig], nn.Module]  # G alone, uninitialised: to load trained weights into
    min_resolution: int
    max_resolution: int = 1024
    settings: type = NoSettings  # its own settings: a dataclass of facegan.config.setting fields
    conditional: bool = False  # takes labels (model.attributes); its D may have an attribute head
    check: Callable[[ModelConfig], list[str]] = field(default=lambda m: [])  # further problems, as messages
    growth: Growth | None = None
    mapping: Mapping | None = None
    figures: tuple[Figure, ...] = ()  # figures its networks add to the training log (growth.figures' names)
    frozen_parameters: Callable[[nn.Module], int] = field(default=lambda discriminator: 0)
    kind: str = "generator"  # the kind of model (facegan.train.kinds): what a batch, a step and a grid are
    data_attributes: Callable[[ModelConfig], tuple[str, ...]] = field(
        default=lambda m: attribute_names(m.attributes))
    """The CelebA attributes whose labels training loads beside the images: a conditional
    model's (model.attributes), a translator's domains."""
    blank_input: Callable[[ModelConfig, int], torch.Tensor] = field(default=lambda m, n: torch.zeros(n, m.z_dim))
    """n inputs of the generator's shape, all zeros (to count its FLOPs): latents, or an upscaler's images."""

    def problems(self, m: ModelConfig) -> list[str]:
        """Everything wrong with ``m`` for this family, one message each (its own settings
        are range-checked by facegan.configure)."""
        found = []
        if not (self.min_resolution <= m.resolution <= self.max_resolution and math.log2(m.resolution).is_integer()):
            found.append(f"model.resolution must be a power of two from {self.min_resolution} to "
                         f"{self.max_resolution} for family {self.name}, not {m.resolution}")
        return found + self.check(m)


def init_setting() -> str:
    """The ``init`` setting, for a family whose builder calls ``initialise``."""
    return setting("dcgan_normal", "weight init: dcgan_normal, N(0, 0.02), or glorot_uniform (Keras)",
                   choices=INIT_SCHEMES)


def dropout_setting() -> float:
    """The ``d_dropout`` setting: dropout before the discriminator's last layer."""
    return setting(0.0, "dropout before the discriminator's last layer (the thesis: 0.2)", (0, 0.99))


def initialise(module: nn.Module, scheme: str) -> None:
    """Set weights by ``scheme``: Keras' Glorot-uniform with zero biases, or DCGAN's
    N(0, 0.02) for convolutions and N(1, 0.02) scales for batch norm."""
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}")
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if scheme == "glorot_uniform":
                nn.init.xavier_uniform_(layer.weight)
            else:
                nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d) and layer.affine:
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)


def spectral_normalise(module: nn.Module) -> None:
    """Divide the weight of every convolution and linear layer by its largest singular
    value (Miyato et al. 2018), estimated by one power iteration per training step."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(layer)
