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
from facegan.train.trainer import Observer, train
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


@pytest.fixture(scope="module")
def generator_16px(tmp_path_factory) -> Path:
    """An untrained 16 px generator file: the tiny upscaler's input size."""
    from facegan import generator_file
    from tests.conftest import tiny_config, widened

    config = tiny_config("dcgan64", resolution=16)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("generator") / "g16.safetensors"
    generator_file.save(widened(models.build(config.model)[0]).state_dict(), config, None, path)
    return path


def test_generate_upscale_writes_the_same_faces_larger(upscaler_run, generator_16px, tmp_path, capsys):
    small, large = tmp_path / "small", tmp_path / "large"
    assert main(["generate", "--checkpoint", str(generator_16px), "-n", "3", "--out", str(small)]) == 0
    assert main(["generate", "--checkpoint", str(generator_16px), "-n", "3", "--out", str(large),
                 "--upscale", str(upscaler_run)]) == 0
    assert "upscaled to 32 px by" in capsys.readouterr().out
    upscaler, _, _ = sample.load_generator(final_checkpoint(upscaler_run), CPU, "upscaler")
    for name in ("000000.png", "000002.png"):
        face = np.asarray(Image.open(small / name))
        assert np.array_equal(np.asarray(Image.open(large / name)), upscaling.upscale(upscaler, face[None], CPU)[0])
    assert main(["generate", "--model", "celeba64", "--out", str(tmp_path / "f.png"), "--upscale",
                 str(upscaler_run)]) == 2
    assert "takes 16 px faces and this generator makes 64 px ones" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(generator_16px), "--out", str(tmp_path / "f.png"), "--upscale",
                 str(tmp_path / "nothing")]) == 2
    assert "no upscaler" in capsys.readouterr().err


def test_an_upscaler_exports_to_safetensors_and_onnx_of_any_size(upscaler_run, tmp_path, capsys):
    from facegan import export

    pytest.importorskip("onnxruntime")
    half, onnx_file = tmp_path / "up.safetensors", tmp_path / "up.onnx"
    assert main(["export", "--run", str(upscaler_run), "--out", str(half), "--half"]) == 0
    out = capsys.readouterr().out
    assert "over 64 images" in out and "facegan upscale --checkpoint" in out
    photo = tmp_path / "face.png"
    Image.fromarray(synthetic_faces(1, 20, seed=9)[0]).save(photo)
    assert main(["upscale", str(photo), "--checkpoint", str(half), "--out", str(tmp_path / "big.png")]) == 0
    assert main(["export", "--run", str(upscaler_run), "--out", str(onnx_file)]) == 0
    assert "onnxruntime matches PyTorch on 16 images" in capsys.readouterr().out
    import onnxruntime

    upscaler, config, _ = sample.load_generator(final_checkpoint(upscaler_run), CPU, "upscaler")
    odd = torch.rand(2, 3, 12, 20) * 2 - 1  # another size than it trained on
    (made,) = onnxruntime.InferenceSession(str(onnx_file)).run(["images"], {"low_res": odd.numpy()})
    with torch.no_grad():
        assert made.shape == (2, 3, 24, 40) and np.abs(made - upscaler(odd).numpy()).max() <= export.ONNX_TOLERANCE


def final_checkpoint(run: Path) -> Path:
    return RunDir(run).latest_checkpoint()


def gan_stage(source: Path, **changes):
    return tiny(pixel=0.01, perceptual=1.0, adversarial=0.005, g_lr=1e-4, d_lr=1e-4, start_from=str(source),
                **changes)


def test_the_adversarial_stage_starts_from_the_psnr_stage_and_resumes_bit_for_bit(upscaler_run, tmp_path, capsys):
    """sr128-gan's losses on a tiny upscaler: it starts from the earlier run's weights
    (not its own random ones), trains its critic, logs every loss, and a cut run resumes
    (without reading start_from again) as an uninterrupted one."""
    images = synthetic_faces(8, 32, seed=5)
    first = final_state(upscaler_run)["generator"]
    seen = []

    class Notes(Observer):
        def on_note(self, message: str) -> None:
            seen.append(message)

    train(RunPlan(gan_stage(upscaler_run, max_steps=1), RunDir(tmp_path / "one"), None), Notes(), images=images)
    assert any("starting from" in note and "discriminator and optimisers start fresh" in note for note in seen)
    one = final_state(tmp_path / "one")["generator"]
    moved = max((one[k] - v).abs().max().item() for k, v in first.items())
    assert 0 < moved < 0.01  # one small step away from the PSNR stage's weights
    train(RunPlan(gan_stage(upscaler_run), RunDir(tmp_path / "straight"), None), images=images)
    rows = [line for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines() if '"step"' in line]
    assert all(key in rows[-1] for key in ('"perceptual"', '"loss_d"', '"loss_g"', '"d_real"', '"l1"'))
    train(RunPlan(gan_stage(upscaler_run, epochs=1), RunDir(tmp_path / "cut"), None), images=images)
    train(plan(tmp_path / "cut", overrides={"epochs": 3, "start_from": str(tmp_path / "nowhere")}), images=images)
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


@pytest.mark.parametrize("source, message", [("nowhere", "neither a checkpoint"), ("wider", "is not this run's"),
                                             ("generator", "holds a generator")])
def test_start_from_refuses_what_does_not_fit(source, message, upscaler_run, tmp_path):
    from facegan.errors import FaceganError
    from facegan import pretrained

    given = {"nowhere": tmp_path / "nowhere.pt", "wider": upscaler_run,
             "generator": pretrained.path("celeba64")}[source]
    config = gan_stage(given, g_width=16) if source == "wider" else gan_stage(given)
    with pytest.raises(FaceganError, match=message):
        train(RunPlan(config, RunDir(tmp_path / "run"), None), images=synthetic_faces(8, 32, seed=5))
    assert not (tmp_path / "run").exists()  # a failed start leaves nothing behind


def test_ssim_and_psnr_agree_with_scikit_image():
    """Reference values from scikit-image 0.26 (structural_similarity with gaussian_weights,
    sigma 1.5, use_sample_covariance False, data_range 255; peak_signal_noise_ratio) on
    the luminance of this same pair."""
    rng = np.random.default_rng(0)
    a = (rng.random((2, 64, 64, 3)) * 255).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    assert pixels.ssim(b, a) == pytest.approx(0.9724132050563505, abs=1e-9)
    assert pixels.psnr(b, a) == pytest.approx(28.38505601332323, abs=1e-9)


def test_the_shipped_upscaler_makes_the_shipped_faces_larger(tmp_path, capsys):
    """`generate --upscale` from a fresh install: celeba64's faces through sr128, the
    same faces at 128 px; `upscale` and `models` know it with no source given."""
    from facegan import generator_file, pretrained

    path = pretrained.path(pretrained.UPSCALER)
    assert path.stat().st_size <= 10 * 2**20 and pretrained.upscalers() == [pretrained.UPSCALER]
    card = generator_file.card(path)
    photos = card["photos"]
    assert photos[pretrained.UPSCALER]["fid"] < photos["Lanczos"]["fid"] and card["fid_n"] >= 1000
    assert all(card["generated"][pretrained.UPSCALER][seed] < card["generated"]["Lanczos"][seed]
               for seed in card["generated"]["Lanczos"])
    assert main(["generate", "-n", "4", "--seed", "2", "--out", str(tmp_path / "small")]) == 0
    assert main(["generate", "-n", "4", "--seed", "2", "--upscale", "--out", str(tmp_path / "large")]) == 0
    assert f"upscaled to 128 px by the shipped model {pretrained.UPSCALER}" in capsys.readouterr().out
    upscaler, _, _ = sample.load_generator(path, CPU, "upscaler")
    small = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "small").iterdir())])
    large = np.stack([np.asarray(Image.open(p)) for p in sorted((tmp_path / "large").iterdir())])
    assert large.shape == (4, 128, 128, 3) and np.array_equal(large, upscaling.upscale(upscaler, small, CPU))
    assert main(["upscale", str(tmp_path / "small" / "000000.png"), "--out", str(tmp_path / "big.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "big.png")), large[0])
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert f"{pretrained.UPSCALER} (the default upscaler): srnet, 64 px -> 128 px" in listed
    assert f"{pretrained.DEFAULT} (default)" in listed
