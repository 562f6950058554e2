"""Generators and discriminators, one file per family, built by name from a ModelConfig.

Every network is called as ``net(input, labels)``: ``labels`` is None for an
unconditional one and a (N, attributes) 0/1 tensor for a conditional one."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from facegan.conditions import attribute_names
from facegan.config import ModelConfig
from facegan.errors import FaceganError
from facegan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from facegan.models.thesis import ThesisDiscriminator, ThesisGenerator

# Each family: (generator from the model config, discriminator from it and whether D
# has an attribute head).
FAMILIES: dict[str, tuple[Callable[[ModelConfig], nn.Module], Callable[[ModelConfig, bool], nn.Module]]] = {
    "thesis": (
        lambda m: ThesisGenerator(m.resolution, m.z_dim, m.g_width),
        lambda m, head: ThesisDiscriminator(m.resolution, m.d_width, m.d_dropout),
    ),
    "dcgan": (
        lambda m: DCGANGenerator(m.resolution, m.z_dim, m.g_width, len(attribute_names(m.attributes))),
        lambda m, head: DCGANDiscriminator(m.resolution, m.d_width, m.d_dropout, batch_norm=not m.d_spectral_norm,
                                           conditions=len(attribute_names(m.attributes)), attribute_head=head),
    ),
}


def initialise(module: nn.Module, scheme: str) -> None:
    """Set weights by ``scheme``: Keras' Glorot-uniform with zero biases, or DCGAN's
    N(0, 0.02) for convolutions and N(1, 0.02) scales for batch norm."""
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


def build(model: ModelConfig, attribute_head: bool = False) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (generator, discriminator) pair, D with an attribute head
    (for ``train.attribute_loss``) if asked; seed torch first for repeatability."""
    make_g, make_d = FAMILIES[model.family]
    generator, discriminator = make_g(model), make_d(model, attribute_head)
    initialise(generator, model.init)
    initialise(discriminator, model.init)
    if model.d_spectral_norm:
        spectral_normalise(discriminator)
    return generator, discriminator


def spectral_normalise(module: nn.Module) -> None:
    """Divide the weight of every convolution and linear layer by its largest singular
    value (Miyato et al. 2018), estimated by one power iteration per training step."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(layer)


@contextmanager
def evaluating(module: nn.Module) -> Iterator[nn.Module]:
    """Inference mode (batch norm on running statistics, no dropout) inside, the old mode after."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield module
    finally:
        module.train(was_training)


def check_fits(model: ModelConfig, attribute_head: bool, average: bool, device: torch.device) -> None:
    """Refuse, before allocating anything, a model whose weights, gradients and Adam
    moments alone (with the generator's average, if kept) exceed the device's memory."""
    with torch.device("meta"):
        generator, discriminator = build(model, attribute_head)
    g, d = parameter_count(generator), parameter_count(discriminator)
    needed = 4 * (4 * (g + d) + (g if average else 0))  # fp32: weights, gradients, two moments
    if device.type == "cuda":
        available = torch.cuda.get_device_properties(device).total_memory
    else:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if needed > available:
        raise FaceganError(
            f"the model is too big for this machine: {g:,} + {d:,} parameters need {needed / 2**30:,.1f} GiB for "
            f"weights, gradients and Adam's moments alone, and the {device.type} has {available / 2**30:,.1f} GiB; "
            "lower model.resolution, g_width or d_width")


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

