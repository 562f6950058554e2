"""The style-based generator: demodulation, truncation, style mixing, noise, the
path-length penalty, and the generate options that use them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import configure
from facegan import generator_file
from facegan.cli import main
from facegan.errors import FaceganError
from facegan.models.stylegan2 import ModulatedConv2d, StyleGAN2Generator
from tests.conftest import tiny_config


def small_generator() -> StyleGAN2Generator:
    torch.manual_seed(0)
    return StyleGAN2Generator(16, z_dim=8, width=4).eval()


def test_demodulation_takes_out_the_size_of_the_style():
    torch.manual_seed(0)
    conv, x, w = ModulatedConv2d(6, 5, 3, 8), torch.randn(2, 6, 8, 8), torch.randn(2, 8)
    with torch.no_grad():
        conv.affine.weight.zero_()  # the style is the affine bias alone, the same for every channel
        conv.affine.bias.fill_(2.0)
        a = conv(x, w)
        conv.affine.bias.fill_(7.0)
        b = conv(x, w)
    assert torch.allclose(a, b, atol=1e-5)
    assert 0.5 < float(a.std()) < 2.0  # unit-sized input, unit-sized output


def test_truncation_pulls_every_face_towards_the_average_one():
    generator = small_generator()
    generator.w_average.normal_()
    z = torch.randn(4, 8)
    with torch.no_grad():
        average = generator(z, truncation=0.0)
        assert torch.allclose(average, average[:1].expand_as(average), atol=1e-6)
        assert torch.equal(generator(z, truncation=1.0), generator(z))
        spread = [float(generator(z, truncation=psi).std(dim=0).mean()) for psi in (0.25, 0.5, 1.0)]
    assert spread == sorted(spread)


def test_style_mixing_takes_coarse_styles_from_one_face_and_fine_from_another():
    generator = small_generator()
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    with torch.no_grad():
        assert torch.allclose(generator.mixed(a, b, 0), generator(b), atol=1e-6)
        assert torch.allclose(generator.mixed(a, b, generator.ws), generator(a), atol=1e-6)
        half = generator.mixed(a, b, 3)
    assert not torch.allclose(half, generator(a)) and not torch.allclose(half, generator(b))


def test_training_draws_noise_and_mixes_while_inference_repeats_itself():
    generator = small_generator()
    z = torch.randn(2, 8)
    with torch.no_grad():
        assert torch.equal(generator(z), generator(z))
        generator.train()
        before = generator.w_average.clone()
        for layer in generator.modules():
            if hasattr(layer, "noise_strength"):
                layer.noise_strength.fill_(0.5)
        assert not torch.equal(generator(z), generator(z))
        assert not torch.equal(generator.w_average, before)  # the average w follows training


def test_the_path_length_penalty_trains_the_generator_and_tracks_its_mean():
    generator = small_generator().train()
    penalty = generator.path_length_penalty(torch.randn(4, 8))
    assert penalty.dim() == 0 and float(generator.path_length_mean) > 0
    penalty.backward()
    assert generator.const.grad is not None and generator.mapping_layers[0].weight.grad is not None


def test_path_length_needs_a_mapping_network():
    with pytest.raises(FaceganError, match="pl_weight needs a generator with a mapping network"):
        configure.override(configure.preset("faces64"), {"pl_weight": 2})
    assert configure.override(configure.preset("style64"), {"pl_weight": 0}).train.pl_weight == 0


def read_png(path):
    return np.asarray(Image.open(path))


def test_generate_truncates_and_mixes_styles(tmp_path, capsys):
    generator = small_generator()
    source = tmp_path / "style.safetensors"
    generator_file.save(generator.state_dict(), tiny_config("style64", g_width=4, z_dim=8), None, source)
    plain, truncated, mixed = tmp_path / "plain.png", tmp_path / "t.png", tmp_path / "mix.png"
    for out, extra in ((plain, []), (truncated, ["--truncation", "0.5"]), (mixed, ["--mix", "3,8", "--mix-from", "2"])):
        assert main(["generate", "--checkpoint", str(source), "-n", "4", "--out", str(out), *extra]) == 0, \
            capsys.readouterr().err
    assert not np.array_equal(read_png(plain), read_png(truncated))
    assert read_png(mixed).shape[:2] == (2 + 3 * 18, 2 + 4 * 18)  # three rows of four 16 px faces
    assert "seed 3's styles before input 2" in capsys.readouterr().out

    for extra, message in ((["--truncation", "1.5"], "truncation must be between 0"),
                           (["--mix", "3"], "--mix takes two seeds"),
                           (["--mix", "3,8", "--mix-from", "99"], "mixing layer must be between 1 and")):
        assert main(["generate", "--checkpoint", str(source), "-n", "2", "--out", str(tmp_path / "x.png"), *extra]) == 2
        assert message in capsys.readouterr().err

    dcgan = tmp_path / "dcgan.safetensors"
    config = tiny_config("faces64")
    from facegan import models

    generator_file.save(models.build_generator(config.model).state_dict(), config, None, dcgan)
    assert main(["generate", "--checkpoint", str(dcgan), "-n", "2", "--out", str(tmp_path / "d.png"),
                 "--truncation", "0.7"]) == 2
    assert "mapping network" in capsys.readouterr().err
