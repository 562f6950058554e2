"""The attribute classifier and the attribute audit in `facegan evaluate`."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import checkpoint
from facegan.cli import main
from facegan.data.cache import open_cache
from facegan.data.prepare import prepare
from facegan.metrics.attributes import (AttributeClassifier, AttributeNet, as_input, positive_weights,
                                       recalibrate_batch_norm)
from facegan.metrics import registry
from facegan.train import report
from facegan.train.run import RunDir
from facegan.train.trainer import train
from tests.conftest import tiny_plan
from tests.test_evaluate import needs_inception
from tests.conftest import CELEBA, needs_celeba

ATTRIBUTES = ["Male", "Smiling", "Eyeglasses"]


def labelled_celeba(root: Path, count: int = 400, val: float = 0.0) -> np.ndarray:
    """A CelebA-layout folder in which "Male" images have a dark top half and the others
    a light one (under noise); "Smiling" is a coin toss no picture shows; nobody wears
    glasses. Official split: the first 80% train (less ``val``, the share of all images
    that make the val split), the rest test. Returns the labels."""
    rng = np.random.default_rng(0)
    (root / "img_align_celeba").mkdir(parents=True)
    labels = np.stack([rng.random(count) < 0.3, rng.random(count) < 0.5, np.zeros(count, bool)], 1).astype(int)
    rows, parts = [], []
    for i in range(count):
        name = f"{2 * i + 1:06d}.jpg"
        pixels = rng.integers(60, 196, (48, 40, 3))
        pixels[:24] = pixels[:24] // 3 if labels[i, 0] else 255 - pixels[:24] // 3
        Image.fromarray(pixels.astype(np.uint8)).save(root / "img_align_celeba" / name, quality=95)
        rows.append(f"{name} " + " ".join("1" if v else "-1" for v in labels[i]))
        parts.append(f"{name} {0 if i < (0.8 - val) * count else 1 if i < 0.8 * count else 2}\n")
    (root / "list_attr_celeba.txt").write_text(f"{count}\n{' '.join(ATTRIBUTES)}\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(parts))
    return labels


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    base = tmp_path_factory.mktemp("attributes")
    labels = labelled_celeba(base / "celeba")
    prepare(base / "celeba", base / "cache", 16)
    return base, labels


def test_label_columns_are_picked_by_name(labelled):
    base, labels = labelled
    cache = open_cache(base / "cache")
    assert cache.attribute_columns(("Smiling", "Male")).tolist() == labels[:, [1, 0]].tolist()


def test_batch_norm_statistics_are_recalibrated_to_the_final_weights():
    """After recalibration, the first batch norm's running mean and variance are those of
    its inputs over all the images (not a trailing average), and its momentum is back."""
    torch.manual_seed(0)
    net = AttributeNet(2)
    images = np.random.default_rng(0).integers(0, 256, (96, 16, 16, 3), dtype=np.uint8)
    first_conv, first_norm = net.body[0], net.body[1]
    first_norm.running_mean.fill_(5.0)
    net.eval()
    recalibrate_batch_norm(net, images, size=16, batch_size=32)
    with torch.no_grad():
        inputs = first_conv(as_input(images, 16))
    mean = inputs.mean((0, 2, 3))
    # the cumulative average of per-batch unbiased variances (3 equal batches)
    variance = torch.stack([inputs[i : i + 32].transpose(0, 1).flatten(1).var(1) for i in range(0, 96, 32)]).mean(0)
    assert torch.allclose(first_norm.running_mean, mean, atol=1e-5)
    assert torch.allclose(first_norm.running_var, variance, rtol=1e-4)
    assert first_norm.momentum == 0.1 and not net.training


def test_the_classifier_learns_a_visible_attribute_and_reports_test_accuracy(labelled, capsys):
    base, _ = labelled
    out = base / "classifier.pt"
    assert main(["train-classifier", "--data", str(base / "cache"), "--out", str(out),
                 "--attributes", "Male,Smiling", "--epochs", "6", "--batch-size", "32"]) == 0
    printed = capsys.readouterr().out
    assert "cnn, 2 attributes, trained on 320 images (train split)" in printed
    assert "on the 80 images of the test split:  accuracy  balanced" in printed
    accuracy = {line.split()[0]: float(line.split()[1].rstrip("%")) / 100
                for line in printed.splitlines() if line.startswith("  ")}
    assert accuracy["Male"] >= 0.95  # the picture shows it
    assert accuracy["Smiling"] < 0.75  # a coin toss no picture shows cannot be read
    reader = AttributeClassifier(out)  # its decisions are its probabilities past one half
    images = open_cache(base / "cache").images[:40]
    p = reader.probabilities(images)
    assert p.shape == (40, 2) and ((0 <= p) & (p <= 1)).all()
    assert np.array_equal(reader.read(images), (p > 0.5).astype(np.float32))


def test_positives_are_weighted_by_how_rare_they_are():
    labels = np.array([[1, 0, 1], [0, 0, 1], [0, 0, 1], [0, 0, 1]], np.float32)
    assert positive_weights(labels).tolist() == [3.0, 1.0, 1.0]  # 3 without for 1 with; none; all


def test_an_independent_reader_learns_from_the_val_split_alone(tmp_path, capsys):
    """--architecture resnet --split val: residual blocks with group norm (no batch norm),
    trained on the val split only, judged on test like the audit classifier; it reads
    the visible attribute and not the coin toss, and its file says what it is."""
    labelled_celeba(tmp_path / "celeba", val=0.4)
    prepare(tmp_path / "celeba", tmp_path / "cache", 16)
    out = tmp_path / "reader.pt"
    assert main(["train-classifier", "--data", str(tmp_path / "cache"), "--out", str(out), "--architecture", "resnet",
                 "--split", "val", "--shift", "2", "--balanced", "--attributes", "Male,Smiling", "--epochs", "8",
                 "--batch-size", "32"]) == 0
    assert "resnet, 2 attributes, trained on 160 images (val split, balanced)" in capsys.readouterr().out
    reader = AttributeClassifier(out)
    assert reader.architecture == "resnet" and reader.train_split == "val"
    assert checkpoint.load(out)["balanced"] is True  # the setting it was trained with
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in reader.net.modules())
    assert reader.test_balanced_accuracy["Male"] >= 0.9 and reader.test_balanced_accuracy["Smiling"] < 0.75
    refused = ["train-classifier", "--data", str(tmp_path / "cache"), "--out", str(tmp_path / "x.pt")]
    assert main([*refused, "--shift", "8"]) == 2
    assert "the shift must be 0 to 7 pixels, not 8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:  # judged on test, so never trained on it
        main([*refused, "--split", "test"])
    assert stopped.value.code == 2 and "invalid choice: 'test'" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()


@needs_inception
def test_evaluate_reports_attribute_rates_next_to_the_real_ones(labelled, tmp_path, capsys, monkeypatch):
    base, labels = labelled
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "fgcache"))
    classifier = tmp_path / "classifier.pt"
    assert main(["train-classifier", "--data", str(base / "cache"), "--out", str(classifier),
                 "--attributes", "Male", "--epochs", "1"]) == 0
    train(tiny_plan(tmp_path / "run", epochs=1))
    assert main(["evaluate", "--run", str(tmp_path / "run"), "--real", str(base / "cache"), "--n", "8",
                 "--classifier", str(classifier), "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "attribute rates, N=8 each" in out and "Male" in out
    rates = json.loads((tmp_path / "e.json").read_text())["attributes"]["Male"]
    assert rates["real_labels"] == pytest.approx(labels[:, 0].mean())
    assert 0 <= rates["samples"] <= 1 and 0 <= rates["real_classified"] <= 1
    figures = json.loads((tmp_path / "e.json").read_text())
    assert "classifier FD" in out  # the ImageNet-free distance, beside its real-vs-real floor
    assert 0 <= figures["classifier_fd_floor"] < figures["classifier_fd"]  # an untrained model is far from real


def test_classifier_bad_input(labelled, tmp_path, capsys):
    base, _ = labelled
    folder = tmp_path / "plain"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (20, 20), (i, 0, 0)).save(folder / f"{i}.png")
    prepare(folder, tmp_path / "plain-cache", 16)
    cases = [
        (["train-classifier", "--data", str(tmp_path / "plain-cache")], "holds no CelebA attributes"),
        (["train-classifier", "--data", str(base / "cache"), "--attributes", "Male,Moustache"],
         "unknown attribute Moustache"),
        (["train-classifier", "--data", str(base / "cache"), "--epochs", "0"], "--epochs must be at least 1"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    train(tiny_plan(tmp_path / "run", epochs=1))
    gan = next((tmp_path / "run" / "checkpoints").glob("step-*.pt"))
    assert main(["evaluate", "--checkpoint", str(gan), "--real", str(base / "cache"), "--n", "8",
                 "--classifier", str(gan)]) == 2
    assert "is not an attribute classifier" in capsys.readouterr().err


@pytest.mark.slow
@needs_celeba
def test_classifier_reads_sex_from_real_celeba_photos(tmp_path):
    """Male above 90% on the test split of the shared CelebA subset, at 32 px and one epoch."""
    from facegan.metrics.attributes import train_classifier

    prepare(CELEBA, tmp_path / "cache", 32)
    result = train_classifier(open_cache(tmp_path / "cache"), tmp_path / "c.pt", ("Male", "Smiling"), epochs=1)
    assert result["test_accuracy"]["Male"] > 0.9, result


@needs_inception
def test_evaluations_during_training_track_the_attribute_shares(labelled, tmp_path, capsys):
    """eval.classifier: each evaluation row holds every attribute's share among the samples
    and among the real images compared, and losses.png gets a panel of every attribute's."""
    base, _ = labelled
    classifier = tmp_path / "classifier.pt"
    assert main(["train-classifier", "--data", str(base / "cache"), "--out", str(classifier),
                 "--attributes", "Male,Smiling", "--epochs", "1"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--preset", "dcgan64", "--run", str(run), "--data", str(base / "cache"), "--resolution", "16",
                 "--g-width", "8", "--d-width", "8", "--batch-size", "64", "--epochs", "2", "--eval-every", "1",
                 "--eval-n", "16", "--classifier", str(classifier), "--collapse-alarm", "0"]) == 0
    err = capsys.readouterr().err
    rows = [r for r in RunDir(run).read_metrics() if "fid" in r]
    assert len(rows) == 2
    for r in rows:
        assert {"rate_Male", "real_rate_Male", "rate_Smiling", "real_rate_Smiling", "classifier_fd"} <= r.keys()
        assert 0 <= r["rate_Male"] <= 1 and r["classifier_fd"] >= 0
    assert rows[0]["real_rate_Male"] == rows[1]["real_rate_Male"]  # the same real images each time
    assert err.count("attribute shares, samples (real): Male") == 2
    found = report.panels(RunDir(run).read_metrics())  # losses, D outputs, FID, and every attribute audited
    assert [f.name for f in found[registry.ATTRIBUTE_PANEL]] == ["rate_Male", "real_rate_Male", "rate_Smiling",
                                                                 "real_rate_Smiling"]
    assert list(found) == [registry.LOSSES, registry.OUTPUTS, registry.FID_PANEL, registry.ATTRIBUTE_PANEL]
    assert Image.open(RunDir(run).losses_plot).size[1] > 4 * 200
