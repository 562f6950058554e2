"""Training on prepared caches and raw sources, and the loader that feeds it."""

from pathlib import Path

import numpy as np
import pytest
import torch

from facegan.cli import main
from facegan.data.loader import BatchLoader
from facegan.data.prepare import prepare
from facegan.errors import FaceganError
from facegan.train.trainer import train
from tests.conftest import CELEBA, needs_celeba, tiny_plan
from tests.test_prepare import photo



@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(40):
        photo(i).save(root / f"{i:03d}.jpg")
    return root


def test_train_on_a_prepared_cache(folder, tmp_path):
    prepare(folder, tmp_path / "cache", 16)
    summary = train(tiny_plan(tmp_path / "run", epochs=1, data=str(tmp_path / "cache")))
    assert summary["step"] == 2  # 40 images, batches of 16


def test_a_cache_of_another_size_names_the_prepare_command(folder, tmp_path):
    prepare(folder, tmp_path / "cache", 32)
    with pytest.raises(FaceganError, match=r"holds 32x32 images but the model makes 16x16; prepare one with: "
                                           r"facegan prepare .*photos --out DIR --size 16 --crop center"):
        train(tiny_plan(tmp_path / "run", data=str(tmp_path / "cache")))


def test_a_cache_of_another_split_is_refused_not_trained_on_whole(folder, tmp_path, capsys):
    """data.split picks photos when a source is prepared; a cache holding every split is
    refused for --split train (before anything slow), with the command that makes one."""
    prepare(folder, tmp_path / "cache", 16)
    with pytest.raises(FaceganError, match=r"data.split is 'train' but .*cache holds the 'all' split; prepare that "
                                           r"split with: facegan prepare .*photos --out DIR --size 16 --split train"):
        train(tiny_plan(tmp_path / "run", data=str(tmp_path / "cache"), split="train"))
    assert main(["train", "--preset", "dcgan64", "--resolution", "16", "--data", str(tmp_path / "cache"),
                 "--split", "train", "--run", str(tmp_path / "run"), "--dry-run"]) == 2
    assert "holds the 'all' split" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert train(tiny_plan(tmp_path / "run", data=str(tmp_path / "cache"), epochs=1, split="all"))["step"] == 2


def test_a_raw_folder_is_prepared_once_then_reused(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "caches"))
    flags = ["--preset", "dcgan64", "--resolution", "16", "--g-width", "8", "--d-width", "8", "--batch-size", "16",
             "--data", str(folder), "--epochs", "1"]
    assert main(["train", "--run", str(tmp_path / "a"), *flags]) == 0
    err = capsys.readouterr().err
    assert "prepared now into the cache" in err and str(tmp_path / "caches" / "prepared") in err
    assert main(["train", "--run", str(tmp_path / "b"), *flags]) == 0
    err = capsys.readouterr().err
    assert "from its cache" in err and "prepared now" not in err
    assert len(list((tmp_path / "caches" / "prepared").iterdir())) == 1


def test_prepare_command_summary_and_errors(folder, tmp_path, capsys):
    (folder / "broken.jpg").write_text("no")
    assert main(["prepare", str(folder), "--out", str(tmp_path / "c"), "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "prepared 40 images of 16x16 (crop center) from folder" in out and "skipped 1: 1 not an image" in out
    assert main(["prepare", str(folder), "--out", str(tmp_path / "c"), "--size", "16"]) == 0
    assert "is up to date" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), "--out", str(tmp_path / "d"), "--size", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("facegan: error: no images found") and len(err.strip().splitlines()) == 1


def test_loader_order_depends_only_on_seed_and_epoch_and_scales_on_the_device():
    images = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    loader = BatchLoader(images, 3, seed=5, device=torch.device("cpu"), pixel_range=(-1.0, 1.0))
    assert loader.steps_per_epoch == 3
    first = [images for images, labels in loader.epoch(0)]
    assert [b.shape for b in first] == [(3, 3, 2, 2)] * 3
    assert all(b.min() >= -1 and b.max() <= 1 for b in first)
    again = [images for images, _ in loader.epoch(0)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, (b, _) in zip(first, loader.epoch(1)))
    # resuming at batch 1 gives the same batches as the uninterrupted epoch
    assert all(torch.equal(a, b) for a, (b, _) in zip(first[1:], loader.epoch(0, start=1)))
    # values map exactly: uint8 v -> v / 255 * 2 - 1
    seen = torch.cat(first).permute(0, 2, 3, 1).reshape(-1)
    expected = torch.from_numpy(images).float().div(255).mul(2).sub(1).reshape(10, -1)
    assert any(torch.allclose(seen[:12], row) for row in expected)


def test_mirror_flips_about_half_the_images():
    image = np.zeros((1, 4, 4, 3), np.uint8)
    image[0, :, 0] = 255  # a bright left column
    images = np.repeat(image, 400, axis=0)
    torch.manual_seed(0)
    loader = BatchLoader(images, 400, seed=0, device=torch.device("cpu"), pixel_range=(0.0, 1.0), mirror=True)
    batch, labels = next(loader.epoch(0))
    assert labels is None
    flipped = (batch[:, 0, 0, 3] == 1).float().mean().item()
    assert 0.4 < flipped < 0.6
    assert torch.all((batch[:, 0, 0, 0] == 1) ^ (batch[:, 0, 0, 3] == 1))


def numbered_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose every pixel spells their own index (red = index, green = 255 - index),
    and as labels the index's 7 binary digits: which label row belongs to which image
    can be read off the image, flipped or not."""
    index = np.arange(count)
    images = np.zeros((count, 4, 4, 3), np.uint8)
    images[..., 0] = index[:, None, None]
    images[..., 1] = 255 - index[:, None, None]
    images[:, :, 0, 2] = 255  # a bright left column shows whether an image was mirrored
    labels = ((index[:, None] >> np.arange(7)) & 1).astype(np.float32)
    return images, labels


@pytest.mark.parametrize("mirror", [False, True])
def test_labels_stay_with_their_images_through_shuffling_mirroring_and_resuming(mirror):
    images, labels = numbered_images(100)
    torch.manual_seed(0)
    loader = BatchLoader(images, 16, seed=3, device=torch.device("cpu"), pixel_range=(0.0, 255.0), mirror=mirror,
                         labels=labels)
    seen, flips = [], 0
    for epoch, start in ((0, 0), (1, 0), (1, 2)):
        for batch, batch_labels in loader.epoch(epoch, start):
            index = batch[:, 0, 0, 0].round().long()
            assert torch.equal(batch[:, 1, 0, 0].round().long(), 255 - index)  # a real, whole image
            digits = (index[:, None] >> torch.arange(7)) & 1
            assert torch.equal(batch_labels, digits.float())
            seen += index.tolist()
            flips += int((batch[:, 2, 0, 3] == 255).sum())
    assert len(set(seen[:96])) == 96 and set(seen[:16]) != set(range(16))  # one epoch: all, shuffled
    assert (flips > 0) == mirror


@needs_celeba
def test_shared_celeba_test_split(tmp_path):
    manifest, _ = prepare(CELEBA, tmp_path / "cache", 32, split="test")
    lines = (CELEBA / "list_eval_partition.txt").read_text().split("\n")
    test_files = sorted(line.split()[0] for line in lines if line.endswith(" 2"))
    assert manifest["files"] == test_files and manifest["skipped_count"] == 0
    rows = {r.split()[0]: r.split()[1:] for r in (CELEBA / "list_attr_celeba.txt").read_text().splitlines()[2:]}
    names = (CELEBA / "list_attr_celeba.txt").read_text().splitlines()[1].split()
    male = names.index("Male")
    from facegan.data.cache import open_cache

    opened = open_cache(tmp_path / "cache")
    assert opened.labels["attributes"][:, male].tolist() == [int(rows[f][male] == "1") for f in test_files]
    assert set(opened.labels["split"].tolist()) == {2}
