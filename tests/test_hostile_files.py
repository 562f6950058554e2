"""Files and values a hostile or careless user hands facegan: each refused in one line,
exit status 2, before anything is allocated or hangs; nothing trusted before it is checked."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from facegan import checkpoint, generator_file, models
from facegan.cli import main
from tests.conftest import tiny_config


@pytest.fixture
def generator_path(tmp_path) -> Path:
    """A real generator file of a tiny dcgan."""
    config = tiny_config("faces64")
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    generator_file.save(models.build_generator(config.model).state_dict(), config, None, path)
    return path


def rewritten(path: Path, out: Path, weights=None, **metadata: str) -> Path:
    """``path``'s generator file with some metadata entries (or weights) replaced."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(weights(tensors) if weights else tensors, str(out), {**header, **metadata})
    return out


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facegan: error: "), err
    return err[0]


def test_lying_settings_are_refused_before_a_network_is_allocated(generator_path, tmp_path, capsys):
    config = json.loads(json.dumps(generator_file.metadata(generator_path)["config"]))
    config["model"].update(resolution=256, g_width=4096)  # a generator of many GiB, if it were built
    liar = rewritten(generator_path, tmp_path / "liar.safetensors", config=json.dumps(config))
    started = time.perf_counter()
    error = one_line_error(capsys, ["generate", "--checkpoint", str(liar), "--out", str(tmp_path / "x.png")])
    assert "does not fit its own model settings" in error and "the generator they make lacks" in error
    config["model"].update(resolution=16, g_width=4096)  # the same layers, each far wider
    liar = rewritten(generator_path, tmp_path / "wide.safetensors", config=json.dumps(config))
    error = one_line_error(capsys, ["generate", "--checkpoint", str(liar), "--out", str(tmp_path / "x.png")])
    assert "body.0.weight is stored as [100, 16, 4, 4], the settings make [100, 8192, 4, 4]" in error
    assert time.perf_counter() - started < 20


def test_a_huge_model_s_dry_run_is_one_line(capsys):
    error = one_line_error(capsys, ["train", "--preset", "dcgan64", "--resolution", "1024", "--g-width", "4096",
                                    "--dry-run"])
    assert "the model is too big for this machine" in error


@pytest.mark.parametrize("entry, value, message", [
    ("config", "[1, 2]", "its settings are not a table of sections"),
    ("config", '"a string"', "its settings are not a table of sections"),
    ("config", "[" * 200_000 + "]" * 200_000, "nests more than 64 levels deep"),
    ("conditions", '{"names": ["Male"], "rows": [[2]], "counts": [1]}', "a row that is not 1 values of 0 or 1"),
    ("conditions", '{"names": ["Male"], "rows": [[1]]}', "is not names, rows and counts"),
    ("conditions", '{"names": ["Nope"], "rows": [[1]], "counts": [1]}', "an unknown one"),
])
def test_malformed_metadata_is_one_line(generator_path, tmp_path, capsys, entry, value, message):
    bad = rewritten(generator_path, tmp_path / "bad.safetensors", **{entry: value})
    assert message in one_line_error(capsys, ["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png")])


def test_a_card_nested_deep_does_not_stop_generation(generator_path, tmp_path):
    deep = rewritten(generator_path, tmp_path / "deep.safetensors", card="[" * 200_000 + "]" * 200_000)
    assert main(["generate", "--checkpoint", str(deep), "-n", "2", "--out", str(tmp_path / "x.png")]) == 0


@pytest.mark.parametrize("change, message", [
    (lambda t: {k: v.to(torch.float64) for k, v in t.items()}, "is stored as float64"),
    (lambda t: {k: (v.to(torch.int8) if v.is_floating_point() else v) for k, v in t.items()}, "is stored as int8"),
    (lambda t: {k: (v.fill_(float("nan")) if v.is_floating_point() else v) for k, v in t.items()}, "NaN or infinite"),
])
def test_weights_of_the_wrong_kind_or_not_finite_are_refused(generator_path, tmp_path, capsys, change, message):
    bad = rewritten(generator_path, tmp_path / "bad.safetensors", weights=change)
    assert message in one_line_error(capsys, ["generate", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


def test_a_checkpoint_whose_parts_are_of_the_wrong_type_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "demo", "--run", str(run), "--resolution", "16", "--synthetic-count", "64",
                 "--max-steps", "2", "--threads", "1"]) == 0
    capsys.readouterr()
    latest = checkpoint.latest(run / "checkpoints")
    payload = checkpoint.load(latest)
    for key, value, message in (("generator", [1, 2], "its generator is a list"),
                                ("step", "many", "its step is a str")):
        checkpoint.save({**{k: v for k, v in payload.items() if k not in ("format", "version")}, key: value}, latest)
        assert message in one_line_error(capsys, ["train", "--preset", "demo", "--run", str(run)])
        assert message in one_line_error(capsys, ["generate", "--run", str(run), "--out", str(tmp_path / "x.png")])


@pytest.fixture
def fifo(tmp_path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("argv", [
    ["project", "{fifo}", "--steps", "0"],
    ["train", "--config", "{fifo}", "--dry-run"],
    ["export", "--model", "celeba64", "--out", "{tmp}/x.safetensors", "--card", "{fifo}"],
    ["generate", "--checkpoint", "{fifo}.safetensors", "--out", "{tmp}/x.png"],
    ["prepare", "{fifo}", "--out", "{tmp}/cache", "--size", "16"],
])
def test_a_fifo_is_refused_not_waited_on(fifo, tmp_path, capsys, argv):
    os.mkfifo(f"{fifo}.safetensors")
    argv = [a.format(fifo=fifo, tmp=tmp_path) for a in argv]
    assert "FIFO (named pipe)" in one_line_error(capsys, argv)


def test_a_symlink_to_a_device_or_a_folder_is_named_as_what_it_is(tmp_path, capsys):
    (tmp_path / "zero.pt").symlink_to("/dev/zero")
    (tmp_path / "folder.pt").symlink_to(tmp_path)
    assert "is a character device, not a file" in one_line_error(
        capsys, ["generate", "--checkpoint", str(tmp_path / "zero.pt"), "--out", str(tmp_path / "x.png")])
    assert "is a folder, not a file" in one_line_error(
        capsys, ["generate", "--checkpoint", str(tmp_path / "folder.pt"), "--out", str(tmp_path / "x.png")])


@pytest.mark.parametrize("argv, message", [
    (["generate", "--seed", str(2**64)], "a seed must be between 0 and 4,294,967,295"),
    (["generate", "--seed", str(2**32 - 1), "--interpolate", "-n", "3"], "--seed must be below"),
    (["generate", "--mix", f"{2**64},1"], "a seed must be between"),
    (["generate", "--seed", "-1"], "a seed must be between"),
    (["generate", "--out", "/dev/full/x.png"], "/dev/full is a character device"),
])
def test_values_out_of_range_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert message in one_line_error(capsys, argv)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe[train]\n", "is not UTF-8 text"),
    (b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nests more than 64 levels deep"),
])
def test_a_toml_that_is_not_text_or_nests_too_deep_is_one_line(tmp_path, capsys, content, message):
    (tmp_path / "bad.toml").write_bytes(content)
    assert message in one_line_error(capsys, ["train", "--config", str(tmp_path / "bad.toml"), "--dry-run"])


def test_a_card_that_is_not_text_is_one_line(tmp_path, capsys):
    (tmp_path / "card.json").write_bytes(b"\xff{}")
    assert "is not UTF-8 text" in one_line_error(
        capsys, ["export", "--model", "celeba64", "--out", str(tmp_path / "x.safetensors"), "--card",
                 str(tmp_path / "card.json")])


def test_a_manifest_missing_its_count_is_not_a_cache(tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.mkdir()
    np.save(cache / "images.npy", np.zeros((4, 16, 16, 3), np.uint8))
    (cache / "manifest.json").write_text(json.dumps({"format": "facegan-cache", "complete": True}))
    assert "is not a complete prepared cache" in one_line_error(
        capsys, ["evaluate", "--model", "celeba64", "--real", str(cache), "-n", "2"])


def test_evaluate_checks_where_its_json_goes_before_the_slow_part(tmp_path, capsys):
    started = time.perf_counter()
    assert "the folder /nonexistent does not exist" in one_line_error(
        capsys, ["evaluate", "--model", "celeba64", "--real", str(tmp_path), "--json", "/nonexistent/x.json"])
    assert time.perf_counter() - started < 10


class CountingFeatures:
    """Stands in for the Inception network where only the keeping of its features is
    tested: deterministic 2048-d features, and how many images it was shown."""

    def __init__(self):
        self.shown = 0

    def features(self, images, progress=None):
        self.shown += len(images)
        return np.random.default_rng(len(images)).random((len(images), 2048))


@pytest.mark.parametrize("damage", [lambda p: p.write_bytes(p.read_bytes()[:100]),
                                    lambda p: np.save(p, np.zeros((3, 7)))])
def test_kept_reference_features_that_are_damaged_are_computed_again(tmp_path, damage):
    from facegan.metrics.evaluate import reference_features

    images, place, network = np.zeros((20, 8, 8, 3), np.uint8), tmp_path / "kept.npy", CountingFeatures()
    first, reused = reference_features(images, 10, network, 0, [place])
    assert not reused and network.shown == 10
    assert reference_features(images, 10, network, 0, [place])[1] and network.shown == 10  # kept, not computed
    damage(place)
    again, reused = reference_features(images, 10, network, 0, [place])
    assert not reused and network.shown == 20 and np.array_equal(again, first)
    assert np.array_equal(np.load(place), first)  # replaced by whole features


def test_a_file_that_tells_no_size_is_still_bounded():
    """/proc's files are regular and say 0 bytes; reading stops at the bound."""
    from facegan import files
    from facegan.errors import FaceganError

    assert Path("/proc/self/maps").stat().st_size == 0
    with pytest.raises(FaceganError, match="is more than a config can be"):
        files.read_text("/proc/self/maps", "config", 16)
