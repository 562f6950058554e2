"""Generators and discriminators, one module per family, and the registry of families.

Adding a family: a module here ending in ``FAMILY = Family(...)`` (see
``facegan.models.family``), a preset in ``facegan/presets``, and its tests. The
registry finds the module by itself: no list to edit. Every network is called as
``net(input, labels)``: ``labels`` is None for an unconditional one and a (N,
attributes) 0/1 tensor for a conditional one."""

from __future__ import annotations

import importlib
import os
import pkgutil
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
from torch import nn

from facegan import images as imaging
from facegan.config import ModelConfig
from facegan.errors import FaceganError
from facegan.models.family import Family


def _discover() -> dict[str, Family]:
    """Every ``FAMILY`` declared by a module of this package, by name."""
    found: dict[str, Family] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        family = getattr(importlib.import_module(f"{__name__}.{module.name}"), "FAMILY", None)
        if isinstance(family, Family):
            if family.name in found:
                raise RuntimeError(f"two model families are called {family.name}")
            found[family.name] = family
    return found


FAMILIES: dict[str, Family] = _discover()


def family_of(model: ModelConfig) -> Family:
    if model.family not in FAMILIES:
        raise FaceganError(f"model.family must be one of {', '.join(FAMILIES)}, not {model.family!r}")
    return FAMILIES[model.family]


def with_mapping() -> str:
    """The families whose generator has a mapping network, for messages: "a or b"."""
    return " or ".join(f.name for f in FAMILIES.values() if f.mapping is not None)


def build(model: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    """A freshly initialised (generator, discriminator) pair, D with ``attribute_head``
    attribute readers (``TrainConfig.attribute_heads``: 1 for ``train.attribute_loss``, 2
    with ``train.attribute_twin``); seed torch first for repeatability."""
    return family_of(model).build(model, attribute_head)


def build_generator(model: ModelConfig) -> nn.Module:
    """The generator alone, to load trained weights into (its initial weights are not
    those ``build`` gives)."""
    return family_of(model).generator(model)


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


def image_to_image(network: nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 16,
                   part: nn.Module | None = None) -> np.ndarray:
    """uint8 (N, h, w, 3) ``images`` through an image-to-image ``network`` (an upscaler, a
    translator) in its evaluating mode, a batch at a time: its uint8 outputs. ``part``: the
    part of it to call (a translator's direction), ``network`` itself by default."""
    lo, hi = network.output_range
    call = part if part is not None else network
    out = []
    with evaluating(network):
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.array(images[start : start + batch_size])).to(device)  # a copy: may be read-only
            out.append(imaging.to_uint8(call(batch.permute(0, 3, 1, 2).float() * ((hi - lo) / 255.0) + lo), (lo, hi)))
    return np.concatenate(out) if out else np.empty((0, *images.shape[1:]), np.uint8)


def check_fits(model: ModelConfig, attribute_head: int, average: bool, device: torch.device) -> None:
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


def gflop_per_image(model: ModelConfig) -> float:
    """Billions of floating-point operations of one image through G and then D at full
    size (a growing model fully grown), forward only: what sets whether bf16 pays on a
    CPU. Counted on the meta device, so nothing is computed, allocated or drawn."""
    from torch.utils.flop_counter import FlopCounterMode

    from facegan.conditions import attribute_names

    family = family_of(model)
    with torch.device("meta"):
        generator, discriminator = (network.eval() for network in build(model))  # eval: no random draws
        if family.growth is not None:
            for network in (generator, discriminator):
                family.growth.grow_to(network, 2**62)
        attributes = len(attribute_names(model.attributes))
        labels = torch.zeros(1, attributes) if attributes else None
        with FlopCounterMode(display=False) as counter:
            discriminator(generator(family.blank_input(model, 1), labels), labels)
    return counter.get_total_flops() / 1e9


def parameter_count(module: nn.Module) -> int:
    """The parameters training changes."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def frozen_parameter_count(family: Family, discriminator: nn.Module) -> int:
    """Weights the discriminator uses but training never changes (a pretrained feature
    network, fixed random layers; the family counts those it keeps outside its modules)."""
    return family.frozen_parameters(discriminator) + sum(p.numel() for p in discriminator.parameters()
                                                         if not p.requires_grad)
