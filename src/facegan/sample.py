"""Making faces with a trained generator: load it from a checkpoint, sample, save."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from facegan import checkpoint, files, generator_file, models
from facegan import config as cfg
from facegan import images as imaging
from facegan.conditions import Conditions, attribute_names
from facegan.errors import FaceganError


def load_generator(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, cfg.Config, Conditions | None]:
    """The generator of a checkpoint or a generator file (.safetensors: an export or a
    shipped model), rebuilt from the settings stored beside its weights: for a checkpoint,
    its moving average when the run kept one (train.ema_kimg), else the generator itself;
    its settings; and, for a conditional model, its attributes and their distribution."""
    if generator_file.is_generator_file(path):
        weights, config, conditions, _ = generator_file.load(path)
    else:
        state = checkpoint.TrainingState.load(path)
        config = cfg.validate(cfg.from_dict(state.config, str(path)))
        weights = state.sampling_generator
        conditions = Conditions.from_state(state.conditions) if state.conditions is not None else None
    generator = models.build_generator(config.model)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as e:
        raise FaceganError(f"{path} does not fit its own model settings: {str(e).splitlines()[0]}") from None
    if bool(attribute_names(config.model.attributes)) != (conditions is not None):
        raise FaceganError(f"{path} is damaged: its attributes and their distribution do not agree")
    return generator.to(device).eval(), config, conditions


def latents(count: int, z_dim: int, seed: int) -> torch.Tensor:
    """``count`` latents z ~ N(0, 1); the same seed gives the same latents on any device."""
    return torch.randn(count, z_dim, generator=torch.Generator().manual_seed(seed))


def between(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """The latent a fraction ``t`` of the way from ``a`` to ``b`` along the great circle
    (spherical interpolation): a straight line would pass through latents of lower norm
    than any z ~ N(0, 1) of this size has, where G makes washed-out faces."""
    cos = torch.dot(a / a.norm(), b / b.norm()).clamp(-1.0, 1.0)
    angle = torch.arccos(cos)
    if angle < 1e-4:
        return a + t * (b - a)
    return (torch.sin((1 - t) * angle) * a + torch.sin(t * angle) * b) / torch.sin(angle)


MAX_GRID = 1024  # images in one grid picture; more go to a folder, written as they are made


def has_mapping(generator: torch.nn.Module) -> bool:
    """Whether ``generator`` has a mapping network (family stylegan2): truncation and style mixing apply."""
    return callable(getattr(generator, "mapping", None))


def check_truncation(generator: torch.nn.Module, truncation: float) -> None:
    if truncation != 1 and not has_mapping(generator):
        raise FaceganError("truncation needs a generator with a mapping network (family stylegan2)")
    if not 0 <= truncation <= 1:
        raise FaceganError(f"truncation must be between 0 (the average face) and 1 (none), not {truncation:g}")


@torch.no_grad()
def batches(generator: torch.nn.Module, count: int, seed: int, device: torch.device, batch_size: int = 64,
            labels: np.ndarray | None = None, z: torch.Tensor | None = None,
            truncation: float = 1.0) -> Iterator[np.ndarray]:
    """``count`` images, ``batch_size`` at a time, as uint8 (n, H, W, 3), from the latents
    of ``seed`` (or the given ``z``), with one row of 0/1 ``labels`` each for a conditional
    generator; ``truncation`` psi < 1 for a generator with a mapping network."""
    check_truncation(generator, truncation)
    z = latents(count, generator.z_dim, seed) if z is None else z
    y = None if labels is None else torch.as_tensor(labels, dtype=torch.float32)
    options = {"truncation": truncation} if truncation != 1 else {}
    for i in range(0, count, batch_size):
        yield imaging.to_uint8(generator(z[i : i + batch_size].to(device),
                                         None if y is None else y[i : i + batch_size].to(device), **options),
                               generator.output_range)


def generate(generator: torch.nn.Module, count: int, seed: int, device: torch.device, batch_size: int = 64,
             labels: np.ndarray | None = None, z: torch.Tensor | None = None, truncation: float = 1.0) -> np.ndarray:
    """The images of ``batches`` as one uint8 (N, H, W, 3) array."""
    return np.concatenate(list(batches(generator, count, seed, device, batch_size, labels, z, truncation)))


def mixing(generator: torch.nn.Module, count: int, seed_a: int, seed_b: int, from_layer: int, device: torch.device,
           truncation: float = 1.0) -> np.ndarray:
    """Style mixing, 3 x ``count`` images: the faces of ``seed_a``, those of ``seed_b``,
    then each pair mixed: ``seed_a``'s styles in the layers before ``from_layer`` (pose,
    face shape: the coarse ones come first), ``seed_b``'s from it on (colours, detail)."""
    if not has_mapping(generator):
        raise FaceganError("style mixing needs a generator with a mapping network (family stylegan2)")
    check_truncation(generator, truncation)
    if not 1 <= from_layer < generator.ws:
        raise FaceganError(f"the mixing layer must be between 1 and {generator.ws - 1} (this generator has "
                           f"{generator.ws} style inputs), not {from_layer}")
    a, b = latents(count, generator.z_dim, seed_a).to(device), latents(count, generator.z_dim, seed_b).to(device)
    with models.evaluating(generator):
        rows = [generator(a, truncation=truncation), generator(b, truncation=truncation),
                generator.mixed(a, b, from_layer, truncation)]
    return np.concatenate([imaging.to_uint8(row, generator.output_range) for row in rows])


def latents_between(z_dim: int, seed_a: int, seed_b: int, fractions: Iterable[float]) -> torch.Tensor:
    """The latents each fraction of the way from face 0 of ``seed_a`` to face 0 of
    ``seed_b`` (see ``between``), one row each."""
    a, b = latents(1, z_dim, seed_a)[0], latents(1, z_dim, seed_b)[0]
    return torch.stack([between(a, b, float(t)) for t in fractions])


def walk(generator: torch.nn.Module, count: int, seed: int, device: torch.device,
         labels: np.ndarray | None = None, truncation: float = 1.0) -> np.ndarray:
    """``count`` faces evenly along the great circle from the latent of face 0 of ``seed``
    to that of ``seed`` + 1 (the ends included), with one row of ``labels`` each for a
    conditional generator."""
    z = latents_between(generator.z_dim, seed, seed + 1, np.linspace(0.0, 1.0, count))
    return generate(generator, count, seed, device, labels=labels, z=z, truncation=truncation)


def varying(generator: torch.nn.Module, conditions: Conditions, name: str, count: int, seed: int,
            device: torch.device, wanted: dict[str, int] | None = None) -> np.ndarray:
    """2 x ``count`` images: ``count`` latents with ``name`` = 0, then the same latents
    with ``name`` = 1. Everything else is held fixed per latent: the ``wanted`` values,
    and the other attributes as drawn (from the training data's joint distribution)."""
    labels = conditions.sample(count, seed, wanted)
    column = conditions.names.index(name)
    z = latents(count, generator.z_dim, seed)
    rows = []
    for value in (0, 1):
        labels[:, column] = value
        rows.append(generate(generator, count, seed, device, labels=labels, z=z))
    return np.concatenate(rows)


def is_grid(out: str | Path) -> bool:
    return Path(out).suffix.lower() == ".png"


def save(images: np.ndarray | Iterable[np.ndarray], out: str | Path, columns: int | None = None,
         progress: Callable[[int], None] | None = None) -> int:
    """One grid (of ``columns`` columns, else about square) when ``out`` ends in .png,
    else a folder of numbered PNGs; ``images`` is an array or batches of them (a folder
    is written batch by batch, so any number fits in memory). Returns the count."""
    out = Path(out)
    try:
        if is_grid(out):
            images = images if isinstance(images, np.ndarray) else np.concatenate(list(images))
            out.parent.mkdir(parents=True, exist_ok=True)
            imaging.save_png(imaging.grid(images, columns), out)
            return len(images)
        out.mkdir(parents=True, exist_ok=True)
        written = 0
        for batch in [images] if isinstance(images, np.ndarray) else images:
            for image in batch:
                imaging.save_png(image, out / f"{written:06d}.png")
                written += 1
            if progress:
                progress(written)
        return written
    except OSError as e:
        raise FaceganError(f"cannot write {out}: {files.describe(e, out.parent)}") from None
