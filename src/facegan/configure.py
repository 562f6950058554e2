"""A run's settings, resolved against the registries and checked as a whole.

``facegan.config`` reads, writes and range-checks settings without knowing any family,
loss or step; this module sits above it and above the registries (model families,
training steps, losses, augmentations) and is what everything else calls:

- ``preset``, ``file``, ``from_dict``: a checked config from a preset, a TOML file, or
  the settings saved in a checkpoint or generator file;
- ``override``: flags applied on top (a family's own flags included), checked;
- ``validate``: every rule, each failure one line naming the setting;
- ``family_fields``: every family's own settings, by name, for the command line.

A family's own settings live in ``[model.<family>]``. Settings written before that
table existed kept them flat in ``[model]`` beside every other family's (at their
defaults); ``migrate`` moves them into the table, so old checkpoints, run directories,
generator files and TOML files load as they did.

Validating the model alone (``validate_model``) needs no training code: ``generate`` and
``serve`` use it. ``validate`` also checks the training settings, and imports the
training registries only then.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from facegan import config as cfg
from facegan import models
from facegan.config import Config, ModelConfig
from facegan.conditions import attribute_names
from facegan.errors import FaceganError
from facegan.models.family import Family


def registry(name: str) -> tuple[str, ...]:
    """The names a setting's ``registry`` metadata refers to."""
    if name == "families":
        return tuple(models.FAMILIES)
    from facegan.train import augment, steps  # only a training config names these

    return {"steps": tuple(steps.STEPS), "losses": tuple(steps.LOSSES), "augmentations": tuple(augment.TRANSFORMS)}[name]


def family_fields() -> dict[str, tuple[dataclasses.Field, tuple[str, ...]]]:
    """Every family's own setting, by name: (its field, the families that have it). A
    name shared by families (``d_dropout``) is one flag; its type must agree."""
    index: dict[str, tuple[dataclasses.Field, tuple[str, ...]]] = {}
    common = cfg.field_index()
    for family in models.FAMILIES.values():
        for f in own_fields(family):
            assert f.name not in common, f"family {family.name}'s setting {f.name} is also a common one"
            if f.name in index:
                first, names = index[f.name]
                assert first.type == f.type, f"setting {f.name} has two types"
                index[f.name] = (first, names + (family.name,))
            else:
                index[f.name] = (f, (family.name,))
    return index


def own_fields(family: Family) -> list[dataclasses.Field]:
    return cfg.settings_fields(family.settings)  # NoSettings, for a family without any, has none


def resolve_family(model: ModelConfig, origin: str) -> ModelConfig:
    """``model`` with its family's own settings as the family's dataclass: the defaults,
    then whatever table was read for it. A table for another family is refused."""
    family = models.family_of(model)
    own = model.family_settings
    if dataclasses.is_dataclass(own) and isinstance(own, family.settings):
        return model
    pending = own if isinstance(own, dict) else {}
    strangers = [name for name in pending if name != family.name]
    if strangers:
        known = ", ".join(f.name for f in own_fields(family)) or "none"
        raise FaceganError(f"{origin}: [model.{strangers[0]}] holds settings of family {strangers[0]}, but "
                           f"model.family is {family.name} (its own settings: {known})")
    resolved = family.settings()
    if pending.get(family.name):
        if not own_fields(family):
            raise FaceganError(f"{origin}: family {family.name} has no settings of its own, so no [model.{family.name}]")
        resolved = cfg.apply_fields(resolved, pending[family.name], f"model.{family.name}", origin)
    return dataclasses.replace(model, family_settings=resolved)


def migrate(values: dict[str, Any], origin: str) -> tuple[dict[str, Any], list[str]]:
    """Settings in the flat [model] layout, with each family's own settings in [model],
    moved into ``[model.<family>]``; (the values, notes saying what moved). A flat
    setting of another family is dropped when it is at that family's default (old files
    wrote every family's), and refused otherwise."""
    model = values.get("model")
    if not isinstance(model, dict):
        return values, []
    common = {f.name for f in cfg.settings_fields(ModelConfig)}
    flat = {k: v for k, v in model.items() if k not in common and not isinstance(v, dict)}
    if not flat:
        return values, []
    name = model.get("family", ModelConfig().family)
    family = models.FAMILIES.get(name)
    if family is None:
        return values, []  # validation names the unknown family
    own = {f.name: f for f in own_fields(family)}
    moved, known = {}, family_fields()
    for key, value in flat.items():
        if key in own:
            moved[key] = value
        elif key in known and all(_is_default(key, value, other) for other in known[key][1]):
            continue  # another family's setting at its default: old files wrote them all
        elif key in known:
            raise FaceganError(f"{origin}: model.{key} is not a setting of family {name} (it is one of "
                               f"{', '.join(known[key][1])}'s)")
        else:
            raise FaceganError(f"{origin}: unknown setting model.{key}")
    migrated = {k: v for k, v in model.items() if k not in flat}
    if moved:
        migrated[name] = {**moved, **(model[name] if isinstance(model.get(name), dict) else {})}
    notes = [f"{origin} keeps family {name}'s settings in the old flat [model] layout; read as [model.{name}]"] \
        if moved else []
    return {**values, "model": migrated}, notes


def _is_default(key: str, value: Any, family_name: str) -> bool:
    family = models.FAMILIES[family_name]
    try:
        return cfg.coerce(key, next(f.type for f in own_fields(family) if f.name == key), value) == \
            getattr(family.settings(), key)
    except FaceganError:
        return False


def from_dict(values: dict[str, Any], origin: str, notes: list[str] | None = None, model_only: bool = False) -> Config:
    """A checked config from nested settings (a checkpoint's, a generator file's), migrated
    from the old layout if need be (what moved is appended to ``notes``); ``model_only``
    checks the model alone (enough to build and sample a generator)."""
    values, moved = migrate(values, origin)
    if notes is not None:
        notes.extend(moved)
    config = cfg.apply(Config(), values, origin)
    config = dataclasses.replace(config, model=resolve_family(config.model, origin))
    return validate_model(config) if model_only else validate(config)


def preset(name: str) -> Config:
    return from_dict(cfg.preset_values(name), f"preset {name}")


def file(path: str | Path, notes: list[str] | None = None, base: Config | None = None) -> Config:
    """A TOML file's settings, on top of ``base`` (a preset; default: every setting's
    default), checked."""
    values, moved = migrate(cfg.file_values(path), str(path))
    if notes is not None:
        notes.extend(moved)
    config = cfg.apply(base or Config(), values, str(path))
    return validate(dataclasses.replace(config, model=resolve_family(config.model, str(path))))


def override(config: Config, flat: dict[str, Any], origin: str = "command line") -> Config:
    """``config`` with {field_name: value} overrides, a family's own settings among them,
    checked. A new ``family`` starts from that family's defaults."""
    own_index = family_fields()
    common = {k: v for k, v in flat.items() if k not in own_index}
    own = {k: v for k, v in flat.items() if k in own_index}
    result = cfg.override(config, common, origin)
    if result.model.family != config.model.family:
        result = dataclasses.replace(result, model=dataclasses.replace(result.model, family_settings=None))
    model = resolve_family(result.model, origin)
    family = models.family_of(model)
    for name in own:
        if name not in {f.name for f in own_fields(family)}:
            raise FaceganError(f"model.{name} is not a setting of family {family.name} (it reads "
                               f"{', '.join(f.name for f in own_fields(family)) or 'no settings of its own'}; "
                               f"{name} is {', '.join(own_index[name][1])}'s)")
    if own:
        model = dataclasses.replace(model, family_settings=cfg.apply_fields(model.family_settings, own,
                                                                            f"model.{family.name}", origin))
    return validate(dataclasses.replace(result, model=model))


def validate_model(config: Config) -> Config:
    """Refuse model settings the family cannot build, naming the first problem."""
    m = config.model
    family = models.family_of(m)
    if not isinstance(m.family_settings, family.settings):
        raise FaceganError(f"the settings of family {family.name} were not resolved (facegan.configure.from_dict)")
    cfg.check_fields(m, "model")
    cfg.check_fields(m.family_settings, f"model.{family.name}")
    if attribute_names(m.attributes) and not family.conditional:
        conditional = ", ".join(f.name for f in models.FAMILIES.values() if f.conditional)
        raise FaceganError(f"model.attributes needs a conditional family ({conditional}), not {family.name}")
    problems = family.problems(m)
    if problems:
        raise FaceganError(problems[0])
    return config


def validate(config: Config) -> Config:
    """Refuse settings that cannot work, with a message naming the field."""
    validate_model(config)
    m, t = config.model, config.train
    for section in ("data", "train", "speed", "eval"):
        cfg.check_fields(getattr(config, section), section)
    for section in cfg.SECTIONS:
        for f in cfg.settings_fields(cfg.SECTIONS[section]):
            names = f.metadata.get("registry")
            value = getattr(getattr(config, section), f.name)
            if names == "augmentations":
                from facegan.train import augment

                augment.policies(value)
            elif names and value not in registry(names):
                raise FaceganError(f"{section}.{f.name} must be one of {', '.join(registry(names))}, not {value!r}")
    family = models.family_of(m)
    if t.pl_weight and family.mapping is None:
        raise FaceganError(f"train.pl_weight needs a generator with a mapping network (family "
                           f"{models.with_mapping()}), not family {m.family}")
    if t.attribute_loss and not attribute_names(m.attributes):
        raise FaceganError("train.attribute_loss needs a conditional model: set model.attributes too")
    if t.attribute_twin and not t.attribute_loss:
        raise FaceganError("train.attribute_twin needs train.attribute_loss above 0: the twin reads beside its head")
    if t.twin_attributes:
        if not t.attribute_twin:
            raise FaceganError("train.twin_attributes needs train.attribute_twin above 0")
        outside = set(attribute_names(t.twin_attributes, "train.twin_attributes")) - set(attribute_names(m.attributes))
        if outside:
            raise FaceganError(f"train.twin_attributes: {', '.join(sorted(outside))} not in model.attributes")
    return config
