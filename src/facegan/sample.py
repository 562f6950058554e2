"""Making faces with a trained generator: find and load it, sample, save.

Sampling asks the generator's family what it can do (a mapping network: truncation and
style mixing); ``make`` turns a ``Request`` (what ``facegan generate`` is asked) into
images written a batch at a time, refusing combinations that cannot work."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from facegan import checkpoint, configure, files, generator_file, models
from facegan import config as cfg
from facegan import images as imaging
from facegan.config import SEED_MAX
from facegan.conditions import Conditions, attribute_names
from facegan.errors import FaceganError
from facegan.models.family import Mapping


USE = {"generator": "facegan generate", "upscaler": "facegan upscale", "translator": "facegan edit"}  # the command for each kind of model


def load_generator(path: str | Path, device: torch.device, kind: str | None = "generator",
                   ) -> tuple[torch.nn.Module, cfg.Config, Conditions | None]:
    """The generator of a checkpoint or a generator file (.safetensors: an export or a
    shipped model), rebuilt from the settings stored beside its weights: for a checkpoint,
    its moving average when the run kept one (train.ema_kimg), else the generator itself;
    its settings; and, for a conditional model, its attributes and their distribution.

    Nothing in the file is trusted before it is checked: its settings and attributes are
    validated, the tensors it stores are compared (names, shapes, types) with those the
    settings make, on the meta device, before a weight is read or a network allocated, and
    weights that are not finite are refused. ``kind``: the kind of model asked for (an
    upscaler's network is kept where a generator's is); another kind is refused; None:
    any kind."""
    if generator_file.is_generator_file(path):
        found = generator_file.metadata(path)
        config = configure.from_dict(found["config"], str(path), model_only=True)
        state_of_conditions = found["conditions"]
        check_kind(config, kind, path)
        check_stored(config, generator_file.stored(path), path)
        weights = generator_file.weights(path)
    else:
        state = checkpoint.TrainingState.load(path)
        config = configure.from_dict(state.config, str(path), model_only=True)
        weights, state_of_conditions = state.sampling_generator, state.conditions
        check_kind(config, kind, path)
        check_stored(config, {k: (tuple(v.shape), v.dtype) for k, v in weights.items()}, path)
    conditions = Conditions.from_state(state_of_conditions, str(path)) if state_of_conditions is not None else None
    if attribute_names(config.model.attributes) != (conditions.names if conditions is not None else ()):
        raise FaceganError(f"{path} is damaged: its attributes and their distribution do not agree")
    broken = next((name for name, t in weights.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if broken is not None:
        raise FaceganError(f"{path} is damaged: its weight {broken} holds NaN or infinite values")
    generator = models.build_generator(config.model)
    generator.load_state_dict(weights)
    return generator.to(device).eval(), config, conditions


def check_kind(config: cfg.Config, kind: str | None, path: str | Path) -> None:
    found = models.family_of(config.model).kind
    if kind is not None and found != kind:
        def a(word: str) -> str:
            return ("an " if word[0] in "aeiou" else "a ") + word

        raise FaceganError(f"{path} holds {a(found)} ({config.model.family}), not {a(kind)}: use it with "
                           f"{USE.get(found, 'facegan train')}")


STORED_FLOATS = (torch.float32, torch.float16, torch.bfloat16)  # how facegan stores weights (used as fp32)


def check_stored(config: cfg.Config, found: dict[str, tuple[tuple[int, ...], torch.dtype | None]],
                 path: str | Path) -> None:
    """Refuse stored tensors that are not exactly those the settings' generator has: the
    same names, shapes and kinds (floating weights as fp32, fp16 or bf16). Compared on the
    meta device: nothing is allocated."""
    with torch.device("meta"):
        expected = {k: (tuple(v.shape), v.dtype) for k, v in models.build_generator(config.model).state_dict().items()}
    missing, extra = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or extra:
        what = (f"lacks {missing[0]}" if missing else f"holds {extra[0]}, which it has not") + \
            f" ({len(missing)} missing, {len(extra)} unknown)"
        raise FaceganError(f"{path} does not fit its own model settings: the generator they make {what}")
    for name, (shape, dtype) in expected.items():
        stored_shape, stored_dtype = found[name]
        if stored_shape != shape:
            raise FaceganError(f"{path} does not fit its own model settings: {name} is stored as "
                               f"{list(stored_shape)}, the settings make {list(shape)}")
        fits = stored_dtype in STORED_FLOATS if dtype.is_floating_point else stored_dtype == dtype
        if not fits:
            raise FaceganError(f"{path} is damaged: {name} is stored as {str(stored_dtype).replace('torch.', '')}, "
                               f"not as facegan stores it ({str(dtype).replace('torch.', '')})")


def find_generator(run: str | Path | None = None, checkpoint_path: str | Path | None = None,
                   model: str | None = None, default: str | None = None) -> Path:
    """The file holding the generator (or upscaler) a user names: a run directory's latest
    checkpoint, a checkpoint or generator file, a shipped model, or by default the
    shipped model ``default`` (the shipped generator when None)."""
    from facegan import pretrained

    if run:
        found = checkpoint.latest(Path(run) / "checkpoints")
        if found is None:
            shipped = Path(run).name in pretrained.names()
            hint = (f" (the shipped model is --model {Path(run).name})" if shipped
                    else f" (train one first: facegan train --run {run} ...)")
            raise FaceganError(f"{run} holds no checkpoint{hint}")
        return found
    if checkpoint_path:
        return Path(checkpoint_path)
    return pretrained.path(model or default or pretrained.DEFAULT)


def find_named(name: str | Path, what: str = "model") -> Path:
    """A network named on the command line by one word: a shipped model's name, else a
    run directory (its latest checkpoint), a checkpoint or a generator file."""
    from facegan import pretrained

    if str(name) in pretrained.names():
        return pretrained.path(str(name))
    if Path(name).is_dir():
        return find_generator(run=name)
    if not Path(name).is_file():
        raise FaceganError(f"no {what} {str(name)!r}: it is neither a checkpoint, a run directory, a generator file "
                           f"nor a shipped model ({', '.join(pretrained.names())})")
    return Path(name)


def upscaling_by(upscaler: torch.nn.Module, config: cfg.Config, faces_config: cfg.Config,
                 device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    """What makes a generator's faces larger with ``upscaler``: refused unless its input
    is the generator's output size (an upscaler learns the detail a size misses)."""
    from facegan import upscaling

    side, made = config.model.resolution // config.model.family_settings.scale, faces_config.model.resolution
    if side != made:
        raise FaceganError(f"the upscaler takes {side} px faces and this generator makes {made} px ones: use an "
                           f"upscaler trained for {made} px inputs")
    return lambda faces: upscaling.upscale(upscaler, faces, device)


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


def mapping_of(config: cfg.Config) -> Mapping | None:
    """The mapping network of the generator ``config`` describes, if its family has one."""
    return models.family_of(config.model).mapping


def check_truncation(config: cfg.Config, truncation: float) -> None:
    if truncation != 1 and mapping_of(config) is None:
        raise FaceganError(f"truncation needs a generator with a mapping network (family {models.with_mapping()}), "
                           f"not family {config.model.family}")
    if not 0 <= truncation <= 1:
        raise FaceganError(f"truncation must be between 0 (the average face) and 1 (none), not {truncation:g}")


@torch.no_grad()
def batches(generator: torch.nn.Module, count: int, seed: int, device: torch.device, batch_size: int = 64,
            labels: np.ndarray | None = None, z: torch.Tensor | None = None,
            truncation: float = 1.0) -> Iterator[np.ndarray]:
    """``count`` images, ``batch_size`` at a time, as uint8 (n, H, W, 3), from the latents
    of ``seed`` (or the given ``z``), with one row of 0/1 ``labels`` each for a conditional
    generator; ``truncation`` psi < 1 for a generator with a mapping network (checked by
    ``check_truncation``)."""
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


def mixing(generator: torch.nn.Module, config: cfg.Config, count: int, seed_a: int, seed_b: int, from_layer: int,
           device: torch.device, truncation: float = 1.0, batch_size: int = 64) -> Iterator[np.ndarray]:
    """Style mixing, 3 x ``count`` images in batches: the faces of ``seed_a``, those of
    ``seed_b``, then each pair mixed: ``seed_a``'s styles in the layers before
    ``from_layer`` (pose, face shape: the coarse ones come first), ``seed_b``'s from it
    on (colours, detail)."""
    mapping = mapping_of(config)
    if mapping is None:
        raise FaceganError(f"style mixing needs a generator with a mapping network (family "
                           f"{models.with_mapping()}), not family {config.model.family}")
    check_truncation(config, truncation)
    inputs = mapping.style_inputs(generator)
    if not 1 <= from_layer < inputs:
        raise FaceganError(f"the mixing layer must be between 1 and {inputs - 1} (this generator has "
                           f"{inputs} style inputs), not {from_layer}")
    a, b = latents(count, generator.z_dim, seed_a), latents(count, generator.z_dim, seed_b)
    with models.evaluating(generator):
        yield from batches(generator, count, seed_a, device, batch_size, z=a, truncation=truncation)
        yield from batches(generator, count, seed_b, device, batch_size, z=b, truncation=truncation)
        for i in range(0, count, batch_size):
            mixed = mapping.mixed(generator, a[i : i + batch_size].to(device), b[i : i + batch_size].to(device),
                                  from_layer, truncation)
            yield imaging.to_uint8(mixed, generator.output_range)


def latents_between(z_dim: int, seed_a: int, seed_b: int, fractions: Iterable[float]) -> torch.Tensor:
    """The latents each fraction of the way from face 0 of ``seed_a`` to face 0 of
    ``seed_b`` (see ``between``), one row each."""
    a, b = latents(1, z_dim, seed_a)[0], latents(1, z_dim, seed_b)[0]
    return torch.stack([between(a, b, float(t)) for t in fractions])


def walk(generator: torch.nn.Module, count: int, seed: int, device: torch.device,
         labels: np.ndarray | None = None, truncation: float = 1.0) -> Iterator[np.ndarray]:
    """``count`` faces, in batches, evenly along the great circle from the latent of face
    0 of ``seed`` to that of ``seed`` + 1 (the ends included), with one row of ``labels``
    each for a conditional generator."""
    z = latents_between(generator.z_dim, seed, seed + 1, np.linspace(0.0, 1.0, count))
    return batches(generator, count, seed, device, labels=labels, z=z, truncation=truncation)


def varying(generator: torch.nn.Module, conditions: Conditions, name: str, count: int, seed: int,
            device: torch.device, wanted: dict[str, int] | None = None) -> Iterator[np.ndarray]:
    """2 x ``count`` images in batches: ``count`` latents with ``name`` = 0, then the same
    latents with ``name`` = 1. Everything else is held fixed per latent: the ``wanted``
    values, and the other attributes as drawn (from the training data's joint distribution)."""
    labels = conditions.sample(count, seed, wanted)
    column = conditions.names.index(name)
    z = latents(count, generator.z_dim, seed)
    for value in (0, 1):
        labels[:, column] = value
        yield from batches(generator, count, seed, device, labels=labels.copy(), z=z)


@dataclass(frozen=True)
class Request:
    """What ``facegan generate`` is asked to make (see ``make``)."""

    n: int = 16
    seed: int = 0
    out: str = "faces.png"  # a .png path: one grid; anything else: a folder of numbered PNGs
    attr: dict[str, int] | None = None  # conditional models: values asked for
    interpolate: bool = False  # a walk of n faces from seed to seed + 1
    truncation: float = 1.0
    mix: tuple[int, int] | None = None  # style mixing of two seeds' faces
    mix_from: int = 4
    vary: str | None = None  # n faces with the attribute 0, over the same faces with it 1

    @property
    def rows(self) -> int:
        return 3 if self.mix is not None else 2 if self.vary else 1

    def check(self) -> None:
        """Refuse what no model could make (the model's own limits are checked by ``make``)."""
        if not str(self.out).strip():
            raise FaceganError("--out is empty: give a .png path for one grid or a folder for numbered PNGs")
        if Path(self.out).suffix.lower() in OTHER_IMAGE_SUFFIXES:
            raise FaceganError(f"--out {self.out}: grids are written as PNG, and anything not ending in .png is a "
                               f"folder; give {Path(self.out).with_suffix('.png')} or a folder name")
        if not 1 <= self.n <= MAX_IMAGES:
            raise FaceganError(f"-n must be between 1 and {MAX_IMAGES:,}, not {self.n:,}")
        for seed in (self.seed, *(self.mix or ())):
            if not 0 <= seed <= SEED_MAX:
                raise FaceganError(f"a seed must be between 0 and {SEED_MAX:,}, not {seed:,}")
        if self.interpolate and self.seed == SEED_MAX:
            raise FaceganError(f"--interpolate walks to the next seed: --seed must be below {SEED_MAX:,}")
        if is_grid(self.out) and self.n * self.rows > MAX_GRID:
            made = f" (this makes {self.rows} x -n)" if self.rows > 1 else ""
            raise FaceganError(f"a grid holds at most {MAX_GRID:,} faces; give --out a folder for more{made}")
        if self.interpolate and (self.vary or self.n < 2):
            raise FaceganError("--interpolate walks -n >= 2 faces between two seeds; it does not go with --vary"
                               if self.vary else f"--interpolate needs -n of at least 2 (the two ends), not {self.n}")
        if self.mix is not None and (self.interpolate or self.vary or self.attr is not None):
            raise FaceganError("--mix makes its own grid; it does not go with --interpolate, --vary or --attr")


MAX_IMAGES = 1_000_000  # -n: at most this many (their latents are held in memory)
OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")  # not a folder name, not a grid


def make(generator: torch.nn.Module, config: cfg.Config, conditions: Conditions | None, request: Request,
         device: torch.device, source: str = "the generator", progress: Callable[[int, int], None] | None = None,
         note: Callable[[str], None] | None = None, finish: Callable[[np.ndarray], np.ndarray] | None = None) -> str:
    """Make and write what ``request`` asks of the generator (``source``: its name in the
    result), a batch at a time (a folder of any size fits in memory; ``progress(written,
    total)`` after each batch); every combination that cannot work is refused before
    anything is drawn. Returns what was written, in words; ``note`` is told what was
    drawn for the user where they did not say. ``finish``: what each batch of faces goes
    through before it is written (``upscaling_by``'s upscaling)."""
    r, note = request, note or (lambda text: None)
    write = functools.partial(save, finish=finish)
    r.check()
    out = Path(r.out)
    if is_grid(out) and out.is_file():
        note(f"replacing the earlier {out}")
    elif not is_grid(out) and out.is_dir() and any(out.glob("[0-9]" * 6 + ".png")):
        note(f"{out} already holds numbered images: those up to {r.n * r.rows - 1:06d}.png are replaced")
    rows, total = r.rows, r.n * r.rows
    if r.mix is not None:
        images = mixing(generator, config, r.n, *r.mix, r.mix_from, device, r.truncation)
        write(images, r.out, columns=r.n, progress=_counted(progress, total))
        return (f"wrote style mixing from {source} to {r.out}: seed {r.mix[0]}'s {r.n} faces, seed {r.mix[1]}'s, "
                f"then seed {r.mix[0]}'s styles before input {r.mix_from} with seed {r.mix[1]}'s from it on")
    check_truncation(config, r.truncation)
    truncated = f" (truncation {r.truncation:g})" if r.truncation != 1 else ""
    if conditions is None:
        if r.attr is not None or r.vary:
            raise FaceganError(f"{source} is an unconditional model: it takes no --attr or --vary (train a "
                               "conditional one: facegan train --help lists the presets)")
        if r.interpolate:
            write(walk(generator, r.n, r.seed, device, truncation=r.truncation), r.out, columns=r.n,
                 progress=_counted(progress, total))
            return (f"wrote a walk of {r.n} faces from seed {r.seed} to seed {r.seed + 1} from {source} to "
                    f"{r.out}{truncated}")
        write(batches(generator, r.n, r.seed, device, truncation=r.truncation), r.out,
             progress=_counted(progress, total))
        return f"wrote {r.n} image{'s' if r.n != 1 else ''} from {source} to {r.out}{truncated}"
    wanted = dict(r.attr or {})
    conditions.check(wanted)
    if r.vary:
        conditions.check({r.vary: 0})
        if r.vary in wanted:
            raise FaceganError(f"--vary {r.vary} cannot also be fixed by --attr")
    drawn = [n for n in conditions.names if n not in wanted and n != r.vary]
    if not wanted:
        note(f"no --attr given: drawing {', '.join(drawn)} as the training images have them")
    elif drawn and conditions.matching(wanted) == 0:
        note(f"no training image has {assignments(wanted)}: drawing {', '.join(drawn)} each from its overall share")
    if r.vary:
        images = varying(generator, conditions, r.vary, r.n, r.seed, device, wanted)
        what = f"{r.n} faces with {r.vary}=0 (first row) and the same faces with {r.vary}=1 (second row)"
    elif r.interpolate:  # one set of labels for the whole walk
        images = walk(generator, r.n, r.seed, device, conditions.sample(1, r.seed, wanted).repeat(r.n, axis=0))
        what = f"a walk of {r.n} faces from seed {r.seed} to seed {r.seed + 1}"
    else:
        images = batches(generator, r.n, r.seed, device, labels=conditions.sample(r.n, r.seed, wanted))
        what = f"{r.n} face{'s' if r.n != 1 else ''}"
    write(images, r.out, columns=r.n if rows > 1 or r.interpolate else None, progress=_counted(progress, total))
    given = assignments(wanted) if wanted else "no attribute fixed"
    return (f"wrote {what} from {source} to {r.out}: {given}"
            + (f"; {', '.join(drawn)} drawn as in the training data" if drawn else ""))


def assignments(wanted: dict[str, int]) -> str:
    return ",".join(f"{name}={value}" for name, value in wanted.items())


def _counted(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None] | None:
    return (lambda done: progress(done, total)) if progress else None


def is_grid(out: str | Path) -> bool:
    return Path(out).suffix.lower() == ".png"


def save(images: np.ndarray | Iterable[np.ndarray], out: str | Path, columns: int | None = None,
         progress: Callable[[int], None] | None = None, finish: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """One grid (of ``columns`` columns, else about square) when ``out`` ends in .png,
    else a folder of numbered PNGs; ``images`` is an array or batches of them (a folder
    is written batch by batch, so any number fits in memory), each batch passed through
    ``finish`` first if given. Returns the count."""
    out = Path(out)
    if finish is not None:
        images = (finish(batch) for batch in ([images] if isinstance(images, np.ndarray) else images))
    try:
        if is_grid(out):
            images = images if isinstance(images, np.ndarray) else np.concatenate(list(images))
            files.make_folder(out.parent)
            imaging.save_png(imaging.grid(images, columns), out)
            return len(images)
        files.make_folder(out)
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
