"""Projection: finding a photo's latent, through the library and the command line."""

from __future__ import annotations

import json

import numpy as np
import torch

from facegan import generator_file
from facegan import images as imaging
from facegan.cli import main
from facegan.models.dcgan import DCGANGenerator
from facegan.project import learning_rate, on_sphere, project
from tests.conftest import tiny_config, widened


def small_generator() -> DCGANGenerator:
    torch.manual_seed(0)
    return widened(DCGANGenerator(16, z_dim=8, width=8)).eval()


def test_a_face_the_generator_made_is_found_again():
    generator = small_generator()
    with torch.no_grad():
        photo = imaging.to_uint8(generator(on_sphere(torch.randn(1, 8, generator=torch.Generator().manual_seed(7)))),
                                 generator.output_range)[0]
    result = project(generator, photo, steps=80, starts=8, seed=1)
    first, last = result.history[0], result.history[-1]
    assert last["total"] < 0.5 * first["total"] and last["total"] < 0.2 * result.start["median_random_total"]
    rmse = np.sqrt(np.mean((photo.astype(float) - result.image.astype(float)) ** 2))
    assert rmse < 20, rmse  # of 255 levels
    assert torch.allclose(result.latent.norm(), torch.tensor(8**0.5))  # on the sphere where latents live
    assert [s for s, _ in result.snapshots] == [0, 11, 23, 34, 46, 57, 69, 80]
    assert not any(p.grad is not None for p in generator.parameters())  # G's weights are left alone


def test_the_learning_rate_rises_then_falls_to_zero():
    rates = [learning_rate(s, 100, 0.1) for s in range(101)]
    assert rates[0] == 0 and max(rates) == 0.1 and rates[100] == 0
    assert rates.index(0.1) == 5


def test_the_command_writes_the_search_and_refuses_what_it_cannot_use(tmp_path, capsys):
    generator = small_generator()
    source = tmp_path / "g.safetensors"
    generator_file.save(generator.state_dict(), tiny_config("faces64", resolution=16, g_width=8, z_dim=8), None, source)
    photo = tmp_path / "face.png"
    imaging.save_png(np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8), photo)
    out = tmp_path / "found"
    assert main(["project", str(photo), "--checkpoint", str(source), "--out", str(out), "--steps", "6",
                 "--starts", "4", "--threads", "1"]) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "PSNR" in stdout and "perceptual distance" in stdout
    for name in ("photo.png", "projection.png", "steps.png", "latent.npy", "progress.jsonl"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(7))
    assert np.load(out / "latent.npy").shape == (1, 8)

    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    assert main(["project", str(tmp_path / "broken.jpg"), "--checkpoint", str(source), "--steps", "2"]) == 2
    assert "cannot use" in capsys.readouterr().err and not (tmp_path / "projection-broken").exists()
    assert main(["project", str(photo), "--checkpoint", str(source), "--steps", "-1"]) == 2
    assert "--steps must be between" in capsys.readouterr().err

    conditional = tmp_path / "c.safetensors"
    from facegan.conditions import Conditions

    c_config = tiny_config("cfaces64", resolution=16, g_width=8, z_dim=8, attributes="Male")
    c_generator = DCGANGenerator(16, z_dim=8, width=8, conditions=1)
    generator_file.save(c_generator.state_dict(), c_config, Conditions.of(("Male",), np.array([[0], [1]])), conditional)
    assert main(["project", str(photo), "--checkpoint", str(conditional), "--steps", "2"]) == 2
    assert "conditional model" in capsys.readouterr().err
