import pytest
import torch

from facegan import config as cfg
from facegan import configure
from facegan.conditions import attribute_names
from facegan.errors import FaceganError
from facegan.models import build, family_of


def test_every_preset_loads_and_validates():
    names = cfg.preset_names()
    assert {"thesis128", "dcgan64", "faces64", "faces128", "demo"} <= set(names)
    for name in names:
        configure.preset(name)


@pytest.mark.parametrize("name", cfg.preset_names())
def test_every_preset_builds_networks_of_its_resolution(name):
    """G makes images of the preset's resolution (from latents, or an upscaler from smaller
    images) and D gives logits per image (one, or one per patch), given labels of the preset's attributes for a conditional preset."""
    model = configure.preset(name).model
    torch.manual_seed(0)
    g, d = build(model)
    g.eval()
    attributes = attribute_names(model.attributes)
    labels = (torch.randint(0, 2, (2, len(attributes))).float(),) if attributes else ()
    with torch.no_grad():
        images = g(torch.randn_like(family_of(model).blank_input(model, 2)), *labels)
        assert images.shape == (2, 3, model.resolution, model.resolution)
        logits = d(images, *labels)
        assert logits.shape[0] == 2 and logits.dim() <= 2


def test_thesis128_preset_is_the_thesis_recipe():
    c = configure.preset("thesis128")
    own = c.model.family_settings
    assert (c.model.family, c.model.resolution, c.model.z_dim, own.d_dropout, own.init) == (
        "thesis", 128, 128, 0.2, "glorot_uniform")
    assert (c.train.batch_size, c.train.epochs, c.train.step, c.train.g_lr, c.train.d_lr) == (16, 100, "thesis", 1e-4, 1e-4)
    assert (c.train.beta1, c.train.beta2, c.train.adam_eps) == (0.9, 0.999, 1e-7)


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(FaceganError, match="unknown preset 'nope'.*thesis128"):
        configure.preset("nope")


def test_file_round_trip(tmp_path):
    c = configure.override(configure.preset("dcgan64"), {"epochs": 7, "mirror": False, "g_lr": 3e-4,
                                                         "d_spectral_norm": True})
    cfg.save_file(c, tmp_path / "c.toml")
    assert "[model.dcgan]\nd_dropout = 0.0\ninit = \"dcgan_normal\"\nd_spectral_norm = true" in cfg.to_toml(c)
    assert configure.file(tmp_path / "c.toml") == c


def test_a_file_needs_only_the_fields_it_changes(tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nepochs = 3\n")
    c = configure.file(tmp_path / "c.toml")
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
        ("[model.dcgan]\ninit = 'he'\n", "model.dcgan.init must be one of dcgan_normal, glorot_uniform, not 'he'"),
        ("[model.dcgan]\ngrow_kimg = 3\n", r"unknown setting model.dcgan.grow_kimg \(known: d_dropout, init, "),
        ("[model.progan]\ngrow_kimg = 3\n", r"\[model.progan\] holds settings of family progan, but model.family "
                                           "is dcgan"),
        ("[model]\nfamily = 'gpt'\n", "model.family must be one of"),
        ("[model]\nfamily = 'thesis'\nattributes = 'Male'\n", "model.attributes needs a conditional family"),
        ("[train]\nloss = 'l2'\n", "train.loss must be one of"),
        ("[train\n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_with_the_field_named(tmp_path, text, message):
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(FaceganError, match=message):
        configure.file(tmp_path / "c.toml")


def test_overrides_convert_strings_and_refuse_unknown_names():
    c = cfg.override(cfg.Config(), {"epochs": "5", "g_lr": "2e-4", "mirror": "true", "data": "x.npy"})
    assert (c.train.epochs, c.train.g_lr, c.data.mirror, c.data.data) == (5, 2e-4, True, "x.npy")
    with pytest.raises(FaceganError, match="unknown setting epoch"):
        cfg.override(cfg.Config(), {"epoch": 5})
    with pytest.raises(FaceganError, match="not a valid float"):
        cfg.override(cfg.Config(), {"g_lr": "fast"})


def test_model_differences_name_each_field_a_family_s_own_included():
    a = configure.preset("faces64").model
    b = configure.override(configure.preset("faces64"), {"resolution": 32, "g_width": 8, "d_spectral_norm": True}).model
    assert cfg.model_differences(a, b) == ["resolution: 64 != 32", "g_width: 32 != 8", "d_spectral_norm: False != True"]


# settings as facegan wrote them before families had tables of their own: every family's
# settings flat in [model], at their defaults where they were not the family's
FLAT_PROGAN = {"family": "progan", "resolution": 32, "z_dim": 16, "g_width": 4, "d_width": 8, "d_dropout": 0.0,
               "init": "dcgan_normal", "d_spectral_norm": False, "attributes": "", "grow_from": 8, "grow_kimg": 0.5,
               "upsample": "bilinear", "style_mixing": 0.9, "d_feature_resolution": 0}


def test_settings_in_the_old_flat_layout_are_migrated_with_a_note():
    notes = []
    config = configure.from_dict({"model": FLAT_PROGAN, "train": {"epochs": 3}}, "old.pt", notes)
    own = config.model.family_settings
    assert (own.grow_from, own.grow_kimg, own.upsample) == (8, 0.5, "bilinear")
    assert notes == ["old.pt keeps family progan's settings in the old flat [model] layout; read as [model.progan]"]
    assert "[model.progan]" in cfg.to_toml(config) and "style_mixing" not in cfg.to_toml(config)
    assert configure.from_dict(config.to_dict(), "new") == config  # the new layout reads back as itself


def test_a_flat_setting_of_another_family_away_from_its_default_is_refused():
    with pytest.raises(FaceganError, match="model.style_mixing is not a setting of family progan"):
        configure.from_dict({"model": {**FLAT_PROGAN, "style_mixing": 0.5}}, "old.pt")


def test_a_family_s_own_flags_go_to_its_table_and_a_new_family_starts_from_its_defaults():
    config = configure.override(configure.preset("progan128"), {"grow_kimg": 3})
    assert config.model.family_settings.grow_kimg == 3
    with pytest.raises(FaceganError, match="model.grow_kimg is not a setting of family dcgan"):
        configure.override(configure.preset("faces64"), {"grow_kimg": 3})
    moved = configure.override(configure.preset("progan128"), {"family": "stylegan2", "style_mixing": 0.5})
    assert moved.model.family_settings.style_mixing == 0.5 and "[model.progan]" not in cfg.to_toml(moved)


def test_config_imports_no_model_or_training_code():
    import subprocess
    import sys

    code = ("import sys, facegan.config; "
            "print(sorted(m for m in sys.modules if m.startswith(('facegan.models', 'facegan.train', 'torch'))))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_every_numeric_setting_has_a_range_that_validation_enforces():
    for section, cls in cfg.SECTIONS.items():
        for f in cfg.settings_fields(cls):
            if f.type not in ("int", "float"):
                continue
            low, high = f.metadata["between"]
            assert low <= f.default <= high, f.name
            step = 1 if f.type == "int" else max(abs(high) * 1e-3, 1e-6)
            for outside in (low - step, high + step):
                with pytest.raises(FaceganError, match=rf"{section}\.{f.name} must be between"):
                    cfg.check_fields(getattr(cfg.override(cfg.Config(), {f.name: outside}), section), section)


def test_every_family_setting_has_its_range_or_choices_enforced():
    for name, (f, families) in configure.family_fields().items():
        base = configure.preset(next(p for p in cfg.preset_names()
                                     if configure.preset(p).model.family == families[0]))
        if f.type in ("int", "float"):
            low, high = f.metadata["between"]
            with pytest.raises(FaceganError, match=rf"model\.{families[0]}\.{name} must be between"):
                configure.override(base, {name: high + 1})
        elif f.metadata.get("choices"):
            with pytest.raises(FaceganError, match=rf"model\.{families[0]}\.{name} must be one of"):
                configure.override(base, {name: "nonsense"})


def test_a_partial_config_file_changes_the_preset_it_is_given_or_the_default_one(tmp_path):
    from facegan.train.run import plan

    (tmp_path / "my.toml").write_text("[train]\nepochs = 1\n")
    alone = plan(tmp_path / "a", config_file=tmp_path / "my.toml").config
    assert alone == configure.override(configure.preset("thesis128"), {"epochs": 1})  # the stated default
    on_a_preset = plan(tmp_path / "b", preset="dcgan64", config_file=tmp_path / "my.toml").config
    assert on_a_preset == configure.override(configure.preset("dcgan64"), {"epochs": 1})
