"""Every preset, through the family registry: it builds, trains for real, saves, resumes
bit for bit, and generates (an upscaler: upscales). A new family or preset is covered as soon as it exists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegan import config as cfg
from facegan import configure
from facegan import editing, models, sample, upscaling
from facegan.data.synthetic import synthetic_faces
from facegan.train.run import RunDir, RunPlan, plan
from facegan.train.trainer import train
from tests.test_train import assert_same_training_state, final_state


def small(preset: str, **changes) -> cfg.Config:
    """The preset's family and recipe at the family's smallest size and a tiny width."""
    config = configure.preset(preset)
    family = models.family_of(config.model)
    size = max(16, family.min_resolution)
    # a translator's learning rates fall over the run's planned steps, which resuming with
    # more epochs changes: here they stay constant (tests/test_translate.py resumes the fall)
    own = {"decay_from": 1.0, "d_layers": 2} if family.kind == "translator" else {}
    return configure.override(config, {"resolution": size, "g_width": 4, "d_width": 8, "batch_size": 4,
                                              "log_every": 1, "sample_count": 4, "epochs": 2, "threads": 1,
                                              **own, **changes})


def data_for(config: cfg.Config) -> tuple[np.ndarray, np.ndarray | None]:
    """8 faces (two batches), with labels of the attributes the family trains on: a
    conditional model's, or a translator's domains (16 faces then, 8 in each)."""
    family = models.family_of(config.model)
    if family.kind == "translator":  # every second face of B; the attributes it balances on all 0
        from facegan.models import cycle

        labels = np.zeros((16, len(family.data_attributes(config.model))), np.float32)
        in_b = np.arange(16) % 2 == 1
        if len(cycle.domain_attributes(config.model.family_settings.domains)) == 1:
            labels[:, 0] = in_b
        else:
            labels[:, 0], labels[:, 1] = ~in_b, in_b
        return synthetic_faces(16, config.model.resolution, seed=3), labels
    images = synthetic_faces(8, config.model.resolution, seed=3)
    names = family.data_attributes(config.model)
    labels = np.random.default_rng(0).integers(0, 2, (8, len(names))).astype(np.float32) if names else None
    return images, labels


def test_every_family_has_a_preset():
    assert {configure.preset(p).model.family for p in cfg.preset_names()} == set(models.FAMILIES)


@pytest.mark.parametrize("preset", cfg.preset_names())
def test_a_preset_builds_trains_resumes_bitwise_and_generates(tmp_path, preset):
    config = small(preset)
    images, labels = data_for(config)
    generator, discriminator = models.build(config.model, config.train.attribute_loss > 0)
    assert models.parameter_count(generator) > 0 and models.parameter_count(discriminator) > 0

    train(RunPlan(config, RunDir(tmp_path / "straight"), None), images=images, labels=labels)  # 4 steps
    train(RunPlan(small(preset, epochs=1), RunDir(tmp_path / "cut"), None), images=images, labels=labels)
    resumed = plan(tmp_path / "cut", overrides={"epochs": 2})
    assert resumed.resume_from is not None
    train(resumed, images=images, labels=labels)
    straight, cut = final_state(tmp_path / "straight"), final_state(tmp_path / "cut")
    assert straight["step"] == 4
    assert_same_training_state(straight, cut)

    kind = models.family_of(config.model).kind
    generator, _, conditions = sample.load_generator(RunDir(tmp_path / "cut").latest_checkpoint(), torch.device("cpu"),
                                                     kind)
    if kind == "upscaler":
        faces = upscaling.upscale(generator, upscaling.shrink(images[:3], config.model.family_settings.scale),
                                  torch.device("cpu"))
    elif kind == "translator":
        faces = editing.translate(generator, images[:3], True, torch.device("cpu"))
    else:
        asked = None if conditions is None else conditions.sample(3, 0)
        faces = sample.generate(generator, 3, 0, torch.device("cpu"), labels=asked)
    assert faces.shape == (3, config.model.resolution, config.model.resolution, 3) and faces.dtype == np.uint8
    assert faces.std() > 0
