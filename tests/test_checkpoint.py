import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facegan.errors import FaceganError
from facegan import checkpoint


def test_round_trip_keeps_tensors_and_values(tmp_path):
    path = tmp_path / checkpoint.name_for(12)
    checkpoint.save({"weights": {"w": torch.arange(6.0)}, "step": 12, "config": {"model": {"family": "dcgan"}}}, path)
    loaded = checkpoint.load(path)
    assert torch.equal(loaded["weights"]["w"], torch.arange(6.0))
    assert loaded["step"] == 12 and loaded["config"]["model"]["family"] == "dcgan"
    assert path.name == "step-00000012.pt"
    assert not list(tmp_path.glob(".*partial"))  # the temporary file was renamed


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FaceganError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")


@pytest.mark.parametrize("keep_fraction", [0.0, 0.1, 0.5, 0.9])
def test_truncated_checkpoint_is_named_as_such(tmp_path, keep_fraction):
    path = tmp_path / "step-00000001.pt"
    checkpoint.save({"weights": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(FaceganError, match="truncated or corrupt"):
        checkpoint.load(path)


def test_random_bytes_are_not_taken_for_a_malicious_file(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(FaceganError, match="truncated or corrupt, or not a checkpoint at all") as refused:
        checkpoint.load(path)
    assert "run code" not in str(refused.value)


def test_plain_torch_file_is_not_a_facegan_checkpoint(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(FaceganError, match="not a facegan checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


class WouldRunCode:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_not_executed(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "step-00000005.pt"
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "payload": WouldRunCode(marker)}, path)
    # the file really is dangerous: an unrestricted load would run the command
    assert not marker.exists()
    with pytest.raises(FaceganError, match="refused: it holds objects that could run code"):
        checkpoint.load(path)
    assert not marker.exists()
    with open(path, "rb") as f:  # and the same bytes do run code when loaded without weights_only
        torch.load(f, weights_only=False)
    assert marker.exists()


def test_listing_orders_by_step_ignores_temporaries_and_prune_keeps_newest(tmp_path):
    for step in (100, 5, 20):
        checkpoint.save({"step": step}, tmp_path / checkpoint.name_for(step))
    (tmp_path / ".step-00000200.pt.partial").write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in checkpoint.listing(tmp_path)] == ["step-00000005.pt", "step-00000020.pt", "step-00000100.pt"]
    assert checkpoint.latest(tmp_path).name == "step-00000100.pt"
    checkpoint.prune(tmp_path, keep=2)
    assert [p.name for p in checkpoint.listing(tmp_path)] == ["step-00000020.pt", "step-00000100.pt"]


@pytest.mark.slow
def test_chaos_short_run_resumes_bitwise_after_every_kind_of_interruption():
    """benchmarks/chaos.py with a handful of interruptions: kill -9, SIGINT and SIGTERM, some
    while checkpoints are written; the end equals an uninterrupted run bit for bit."""
    repository = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(repository / "benchmarks" / "chaos.py"), "--interruptions", "6",
                             "--epochs", "12", "--seed", "1"], capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # on a busy machine the first interruptions can land before the first checkpoint (those
    # starts begin afresh), so not every start is a resume; at least one must be
    assert figures["interruptions"] == 6 and figures["resumes"] >= 1
    assert figures["damaged_files"] == 0 and figures["partial_files_left"] == 0 and figures["processes_left"] == 0
    assert figures["metrics_rows_out_of_order"] == 0
    assert figures["bitwise_equal"] and figures["max_difference"] == 0.0
