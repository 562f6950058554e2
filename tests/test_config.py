import dataclasses
import pytest
import torch

from facegan import config as cfg
from facegan.conditions import attribute_names
from facegan.errors import FaceganError
from facegan.models import build


def test_every_preset_loads_and_validates():
    names = cfg.preset_names()
    assert {"thesis128", "dcgan64", "faces64", "faces128", "demo"} <= set(names)
    for name in names:
        cfg.load_preset(name)


@pytest.mark.parametrize("name", cfg.preset_names())
def test_every_preset_builds_networks_of_its_resolution(name):
    """G makes images of the preset's resolution and D gives logits per image (one, or one
    per patch), given labels of the preset's attributes for a conditional preset."""
    model = cfg.load_preset(name).model
    torch.manual_seed(0)
    g, d = build(model)
    g.eval()
    attributes = attribute_names(model.attributes)
    labels = (torch.randint(0, 2, (2, len(attributes))).float(),) if attributes else ()
    with torch.no_grad():
        images = g(torch.randn(2, model.z_dim), *labels)
        assert images.shape == (2, 3, model.resolution, model.resolution)
        logits = d(images, *labels)
        assert logits.shape[0] == 2 and logits.dim() <= 2


def test_thesis128_preset_is_the_thesis_recipe():
    c = cfg.load_preset("thesis128")
    assert (c.model.family, c.model.resolution, c.model.z_dim, c.model.d_dropout, c.model.init) == (
        "thesis", 128, 128, 0.2, "glorot_uniform")
    assert (c.train.batch_size, c.train.epochs, c.train.step, c.train.g_lr, c.train.d_lr) == (16, 100, "thesis", 1e-4, 1e-4)
    assert (c.train.beta1, c.train.beta2, c.train.adam_eps) == (0.9, 0.999, 1e-7)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(FaceganError, match="unknown preset 'nope'.*thesis128"):
        cfg.load_preset("nope")


def test_file_round_trip(tmp_path):
    c = cfg.override(cfg.load_preset("dcgan64"), {"epochs": 7, "mirror": False, "g_lr": 3e-4})
    cfg.save_file(c, tmp_path / "c.toml")
    assert cfg.load_file(tmp_path / "c.toml") == c


def test_a_file_needs_only_the_fields_it_changes(tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nepochs = 3\n")
    c = cfg.load_file(tmp_path / "c.toml")
    assert c.train.epochs == 3 and c.train.batch_size == cfg.TrainConfig().batch_size


@pytest.mark.parametrize(
    "text, message",
    [
        ("[train]\nepoch = 3\n", "unknown setting train.epoch"),
        ("[training]\nepochs = 3\n", r"unknown section \[training\]"),
        ("[train]\nepochs = 'many'\n", "train.epochs: 'many' is not a valid int"),
        ("[train]\nepochs = -1\n", "train.epochs must be between 0 and 1,000,000, not -1"),
        ("[train]\nbatch_size = 0\n", "train.batch_size must be between 1 and 65,536, not 0"),
        ("[model]\nresolution = 100\n", "model.resolution must be a power of two"),
        ("[model]\nresolution = 1048576\n", "model.resolution must be between 8 and 1,024, not 1,048,576"),
        ("[train]\ng_lr = nan\n", "train.g_lr must be between"),
        ("[train]\nseed = -1\n", "train.seed must be between 0 and"),
        ("[model]\ninit = 'he'\n", "model.init must be one of dcgan_normal, glorot_uniform, not 'he'"),
        ("[train]\nloss = 'l2'\n", "train.loss must be one of"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_the_field_named(tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(FaceganError, match=message):
        cfg.load_file(tmp_path / "c.toml")


def test_overrides_convert_strings_and_refuse_unknown_names():
    c = cfg.override(cfg.Config(), {"epochs": "5", "g_lr": "2e-4", "mirror": "true", "data": "x.npy"})
    assert (c.train.epochs, c.train.g_lr, c.data.mirror, c.data.data) == (5, 2e-4, True, "x.npy")
    with pytest.raises(FaceganError, match="unknown setting epoch"):
        cfg.override(cfg.Config(), {"epoch": 5})
    with pytest.raises(FaceganError, match="not a valid float"):
        cfg.override(cfg.Config(), {"g_lr": "fast"})


def test_model_differences_name_each_field():
    a, b = cfg.ModelConfig(), cfg.ModelConfig(resolution=32, g_width=8)
    assert cfg.model_differences(a, b) == ["resolution: 64 != 32", "g_width: 64 != 8"]


def test_every_numeric_setting_has_a_range_that_validation_enforces():
    for section, cls in cfg.SECTIONS.items():
        for f in dataclasses.fields(cls):
            if f.type not in ("int", "float"):
                continue
            low, high = f.metadata["between"]
            assert low <= f.default <= high, f.name
            step = 1 if f.type == "int" else max(abs(high) * 1e-3, 1e-6)
            for outside in (low - step, high + step):
                with pytest.raises(FaceganError, match=rf"{section}\.{f.name} must be between"):
                    cfg.check_ranges(cfg.override(cfg.Config(), {f.name: outside}))
