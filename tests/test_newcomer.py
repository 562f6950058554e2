"""What a newcomer trips on in the first hour: each fix, tried as they would."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from facegan import devices
from facegan.cli import CountReport, main
from facegan.data import synthetic


def test_the_built_in_faces_are_drawn_once_and_reused(tmp_path):
    calls = []
    first = synthetic.drawn_once(24, 16, 3, tmp_path, progress=lambda done, total: calls.append((done, total)))
    (kept,) = tmp_path.glob("faces-24-16px-seed3-*.npy")
    stamp = kept.stat().st_mtime_ns
    again = synthetic.drawn_once(24, 16, 3, tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert np.array_equal(first, again) and np.array_equal(first, synthetic.synthetic_faces(24, 16, 3))
    assert kept.stat().st_mtime_ns == stamp and calls[-1] == (24, 24)
    kept.write_bytes(b"not an array")  # damaged: drawn again, not trusted
    assert np.array_equal(synthetic.drawn_once(24, 16, 3, tmp_path), first)


def test_a_second_training_start_reuses_the_faces_the_first_drew(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "cache"))
    args = ["train", "--preset", "demo", "--resolution", "16", "--synthetic-count", "64", "--max-steps", "1",
            "--threads", "1"]
    assert main([*args, "--run", str(tmp_path / "a")]) == 0
    assert "preparing data: 64/64 (100%)" in capsys.readouterr().err  # progress while drawing
    assert len(list((tmp_path / "cache" / "synthetic").glob("*.npy"))) == 1
    assert main([*args, "--run", str(tmp_path / "b")]) == 0
    assert len(list((tmp_path / "cache" / "synthetic").glob("*.npy"))) == 1


@pytest.mark.parametrize("out, message", [
    ("faces.jpg", "--out faces.jpg: grids are written as PNG, and anything not ending in .png is a folder; give "
                  "faces.png or a folder name"),
    ("", "--out is empty"),
])
def test_generate_refuses_an_out_that_would_surprise(tmp_path, monkeypatch, capsys, out, message):
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "-n", "4", "--out", out]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_generate_says_when_it_replaces_what_was_there(tmp_path, capsys):
    assert main(["generate", "-n", "2", "--out", str(tmp_path / "faces.png")]) == 0
    assert main(["generate", "-n", "2", "--out", str(tmp_path / "faces.png")]) == 0
    assert f"replacing the earlier {tmp_path / 'faces.png'}" in capsys.readouterr().err
    assert main(["generate", "-n", "2", "--out", str(tmp_path / "many")]) == 0
    assert main(["generate", "--n", "3", "--out", str(tmp_path / "many")]) == 0  # --n is -n
    assert "already holds numbered images: those up to 000002.png are replaced" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["000000.png", "000001.png", "000002.png"]


def test_a_run_that_is_a_shipped_model_s_name_points_to_model(capsys):
    assert main(["generate", "--run", "runs/celeba64", "--out", "x.png"]) == 2
    assert "runs/celeba64 holds no checkpoint (the shipped model is --model celeba64)" in capsys.readouterr().err


def test_the_demo_uses_a_thread_per_idle_core():
    threads = devices.threads_for_idle_cores()
    assert 1 <= threads <= (os.cpu_count() or 1)


def test_a_count_found_done_at_once_shows_no_rate():
    stream = io.StringIO()
    CountReport("evaluating", stream)(16, 16)
    assert stream.getvalue() == "evaluating: 16/16 (100%)\n"
