"""What a model family declares, and the helpers families share.

A family is one module in ``facegan.models`` that ends with ``FAMILY = Family(...)``:
its builders (both networks for training, the generator alone for sampling), the
resolutions it supports, whether it takes labels, the model settings it reads beyond
the common ones, any further checks of its settings, and whether its generator has a
mapping network (then it also has ``mapping(z, truncation)``, ``mixed(...)`` and
``path_length_penalty(z)``, and its forward pass takes ``truncation``). Config validation,
``--dry-run``, the trainer, ``generate``, ``evaluate`` and the tests ask the registry
in ``facegan.models`` (``FAMILIES``); no other file lists family names.

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

from facegan.config import ModelConfig

COMMON_FIELDS = ("family", "resolution", "z_dim", "g_width", "d_width")  # every family reads these
INIT_SCHEMES = ("dcgan_normal", "glorot_uniform")  # model.init, for the families that read it (see initialise)


class Generator(Protocol):
    z_dim: int
    output_range: tuple[float, float]

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


class Discriminator(Protocol):
    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...


@dataclass(frozen=True)
class Family:
    name: str
    summary: str  # one line for --help and docs
    build: Callable[[ModelConfig, bool], tuple[nn.Module, nn.Module]]  # (settings, attribute head) -> (G, D)
    generator: Callable[[ModelConfig], nn.Module]  # G alone, uninitialised: to load trained weights into
    min_resolution: int
    max_resolution: int = 1024
    fields: tuple[str, ...] = ()  # model settings it reads besides COMMON_FIELDS
    check: Callable[[ModelConfig], list[str]] = field(default=lambda m: [])  # further problems, as messages
    mapping: bool = False  # G has a mapping network (z -> w): truncation, style mixing, path-length regularisation

    @property
    def conditional(self) -> bool:
        """Takes labels: reads model.attributes."""
        return "attributes" in self.fields

    def problems(self, m: ModelConfig) -> list[str]:
        """Everything wrong with ``m`` for this family, one message each."""
        found = []
        if not (self.min_resolution <= m.resolution <= self.max_resolution and math.log2(m.resolution).is_integer()):
            found.append(f"model.resolution must be a power of two from {self.min_resolution} to "
                         f"{self.max_resolution} for family {self.name}, not {m.resolution}")
        defaults = ModelConfig()
        for name in vars(m):
            if name not in COMMON_FIELDS and name not in self.fields and getattr(m, name) != getattr(defaults, name):
                found.append(f"model.{name} is not a setting of family {self.name} (it reads "
                             f"{', '.join(COMMON_FIELDS[1:] + self.fields)})")
        if "init" in self.fields and m.init not in INIT_SCHEMES:
            found.append(f"model.init must be one of {', '.join(INIT_SCHEMES)}, not {m.init!r}")
        return found + self.check(m)


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
