"""The upscaler kind: pairs made from one cache, a tiny upscaler trained for real, resumed
bit for bit, and used through ``facegan upscale``; what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import configure, models, sample, upscaling
from facegan.cli import main
from facegan.data.loader import PairLoader
from facegan.data.synthetic import synthetic_faces
from facegan.metrics import pixels
from facegan.train.run import RunDir, RunPlan, plan
from facegan.train.trainer import train
from tests.test_train import assert_same_training_state, final_state

CPU = torch.device("cpu")


def tiny(**changes):
    return configure.override(configure.preset("sr128"), {
        "resolution": 32, "g_width": 8, "d_width": 8, "blocks": 1, "patch": 8, "batch_size": 4, "epochs": 3,
        "log_every": 1, "threads": 1, **changes})


def test_pairs_stay_pairs_when_mirrored():
    high = synthetic_faces(8, 32, seed=1)
    low = upscaling.shrink(high, 2)
    loader = PairLoader(low, high, 8, 0, CPU, (0.0, 1.0), mirror=True)
    small, large = next(loader.epoch(0))
    small = (small * 255).round().byte().permute(0, 2, 3, 1).numpy()
    large = (large * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.abs(upscaling.shrink(large, 2).astype(int) - small.astype(int)).max() <= 1  # each input is its target's


def test_interpolation_scores_below_the_photo_and_psnr_ssim_are_sane():
    real = synthetic_faces(6, 64, seed=2)
    low = upscaling.shrink(real, 2)
    bicubic = upscaling.resized(low, 64, "bicubic")
    assert pixels.psnr(real, real) > 90 and pixels.ssim(real, real) == pytest.approx(1.0)
    assert 15 < pixels.psnr(bicubic, real) < 60 and 0.3 < pixels.ssim(bicubic, real) < 1.0
    assert pixels.psnr(upscaling.resized(low, 64, "nearest"), real) < pixels.psnr(bicubic, real)


def test_an_untrained_upscaler_is_bilinear_and_training_beats_it(tmp_path):
    images = synthetic_faces(16, 32, seed=3)
    config = tiny(epochs=40, g_lr=2e-3)
    summary = train(RunPlan(config, RunDir(tmp_path / "run"), None), images=images)
    upscaler, _, _ = sample.load_generator(summary["checkpoint"], CPU, "upscaler")
    low = upscaling.shrink(images, 2)
    made = upscaling.upscale(upscaler, low, CPU)
    torch.manual_seed(0)
    untrained = upscaling.upscale(models.build(config.model)[0], low, CPU)
    bilinear = torch.nn.functional.interpolate(torch.from_numpy(low).permute(0, 3, 1, 2).float(), scale_factor=2,
                                               mode="bilinear", align_corners=False)
    assert np.abs(untrained.astype(int) - bilinear.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()).max() <= 1
    assert pixels.psnr(made, images) > pixels.psnr(untrained, images) + 0.5
    grid = Image.open(summary["samples"])
    assert grid.width > 4 * 32  # low-res | bicubic | model | real


def test_an_interrupted_upscaler_resumes_bit_for_bit(tmp_path):
    images = synthetic_faces(8, 32, seed=4)
    train(RunPlan(tiny(), RunDir(tmp_path / "straight"), None), images=images)
    train(RunPlan(tiny(epochs=1), RunDir(tmp_path / "cut"), None), images=images)
    train(plan(tmp_path / "cut", overrides={"epochs": 3}), images=images)
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


@pytest.fixture(scope="module")
def upscaler_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("upscaler") / "run"
    train(RunPlan(tiny(epochs=1), RunDir(run), None), images=synthetic_faces(8, 32, seed=5))
    return run


def test_upscale_writes_an_image_and_a_folder_twice_as_large(upscaler_run, tmp_path, capsys):
    Image.fromarray(synthetic_faces(1, 40, seed=6)[0][:, :30]).save(tmp_path / "face.jpg")  # any size: 30 x 40
    assert main(["upscale", str(tmp_path / "face.jpg"), "--run", str(upscaler_run), "--out",
                 str(tmp_path / "big.png")]) == 0
    assert Image.open(tmp_path / "big.png").size == (60, 80) and "60x80, from 30x40" in capsys.readouterr().out
    folder = tmp_path / "photos"
    (folder / "inner").mkdir(parents=True)
    Image.fromarray(synthetic_faces(1, 24, seed=7)[0]).save(folder / "inner" / "a.png")
    (folder / "b.png").write_bytes(b"not an image")
    assert main(["upscale", str(folder), "--run", str(upscaler_run), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert Image.open(tmp_path / "out" / "inner" / "a.png").size == (48, 48)
    assert "skipped" in captured.err and "b.png" in captured.err and "1 of 2 images" in captured.out


@pytest.mark.parametrize("what, message", [
    ("generator", "holds a generator"), ("big", "more than 1,048,576 pixels"), ("jpg-out", "must name a .png"),
    ("text", "not an image"), ("missing", "does not exist"),
])
def test_upscale_refuses_in_one_line(what, message, upscaler_run, tmp_path, capsys):
    photo = tmp_path / "face.png"
    Image.fromarray(synthetic_faces(1, 16, seed=8)[0]).save(photo)
    source, out, model = str(photo), str(tmp_path / "out.png"), ["--run", str(upscaler_run)]
    if what == "generator":
        model = ["--model", "celeba64"]
    elif what == "big":
        Image.new("RGB", (1100, 1000)).save(photo)
    elif what == "jpg-out":
        out = str(tmp_path / "out.jpg")
    elif what == "text":
        photo.write_text("hello")
    elif what == "missing":
        source = str(tmp_path / "nothing.png")
    assert main(["upscale", source, *model, "--out", out]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_generate_refuses_an_upscaler(upscaler_run, tmp_path, capsys):
    assert main(["generate", "--run", str(upscaler_run), "--out", str(tmp_path / "f.png")]) == 2
    assert "holds an upscaler (srnet), not a generator: use it with facegan upscale" in capsys.readouterr().err


def test_ssim_and_psnr_agree_with_scikit_image():
    """Reference values from scikit-image 0.26 (structural_similarity with gaussian_weights,
    sigma 1.5, use_sample_covariance False, data_range 255; peak_signal_noise_ratio) on
    the luminance of this same pair."""
    rng = np.random.default_rng(0)
    a = (rng.random((2, 64, 64, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    assert pixels.ssim(b, a) == pytest.approx(0.9724132050563505, abs=1e-9)
    assert pixels.psnr(b, a) == pytest.approx(28.38505601332323, abs=1e-9)
