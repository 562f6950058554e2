"""Training one run in two processes under torchrun (gloo on the CPU cores), against one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facegan import checkpoint, editing, sample
from facegan.data.loader import BatchLoader
from facegan.data.synthetic import synthetic_faces

TINY = ["--preset", "demo", "--resolution", "16", "--g-width", "8", "--d-width", "8", "--synthetic-count", "64",
        "--batch-size", "16", "--log-every", "2", "--sample-count", "4", "--threads", "1"]
CPU = torch.device("cpu")
TOLERANCE = dict(rtol=1e-4, atol=1e-6)  # two processes add sums in another order (measured: 1.5e-7 at most)


def facegan(*argv, processes: int = 1, timeout: float = 240) -> subprocess.CompletedProcess:
    """`facegan train ARGV` in one process, or in several under torchrun (which takes
    --run for its own --run-path: --run-dir is facegan's other name for it)."""
    argv = ["--run-dir" if a == "--run" else a for a in argv]
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
                if processes > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, "-m", "facegan", "train", *map(str, argv)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_shards_of_a_batch_are_the_whole_batch_with_its_flips():
    images = np.random.default_rng(0).integers(0, 256, (40, 4, 4, 3), dtype=np.uint8)
    labels = np.arange(40, dtype=np.float32)[:, None]

    def batches(shard):
        torch.manual_seed(7)  # the random state every rank shares
        loader = BatchLoader(images, 8, 3, torch.device("cpu"), (0.0, 255.0), mirror=True, labels=labels, shard=shard)
        return list(loader.epoch(1))

    whole = batches((0, 1))
    halves = [batches((rank, 2)) for rank in (0, 1)]
    for i, (pictures, rows) in enumerate(whole):
        parts = [halves[rank][i] for rank in (0, 1)]
        assert all(len(p[0]) == 4 for p in parts)
        joined_pictures = torch.cat([p[0] for p in parts])
        joined_rows = torch.cat([p[1] for p in parts])[:, 0]
        order, joined_order = rows[:, 0].argsort(), joined_rows.argsort()  # the same images, flipped alike
        assert torch.equal(rows[order, 0], joined_rows[joined_order])
        assert torch.equal(pictures[order], joined_pictures[joined_order])


def weights(run: Path) -> dict[str, dict[str, torch.Tensor]]:
    state = checkpoint.TrainingState.load(checkpoint.latest(run / "checkpoints"))
    return {"generator": state.generator, "discriminator": state.discriminator}


def assert_close(a, b, **tolerance):
    for net in a:
        for name in a[net]:
            if a[net][name].is_floating_point():
                torch.testing.assert_close(a[net][name], b[net][name], **tolerance, msg=f"{net} {name}")
            else:
                assert torch.equal(a[net][name], b[net][name]), f"{net} {name}"


@pytest.mark.slow
def test_two_processes_train_what_one_does_and_resume_exactly(tmp_path):
    one = facegan("--run", tmp_path / "one", "--epochs", "2", *TINY)
    assert one.returncode == 0, one.stderr
    two = facegan("--run", tmp_path / "two", "--epochs", "2", *TINY, processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "x 2 processes" in two.stderr and "finished at step 8" in two.stdout
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"), **TOLERANCE)

    halves = facegan("--run", tmp_path / "halves", "--epochs", "1", *TINY, processes=2)
    assert halves.returncode == 0, halves.stderr[-3000:]
    resumed = facegan("--run", tmp_path / "halves", "--epochs", "2", *TINY, processes=2)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-3000:]
    assert_close(weights(tmp_path / "two"), weights(tmp_path / "halves"), rtol=0, atol=0)  # the same, bit for bit

    rows = [line for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines() if '"loss_d"' in line]
    assert len(rows) == len(set(rows)) == 4  # one writer: steps 2, 4, 6, 8 logged once each

    other = facegan("--run", tmp_path / "two", "--epochs", "3", *TINY)
    assert other.returncode == 2 and "trained by 2 process(es); resume it with as many" in other.stderr


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def long_two_process_run(run: Path, **env: str) -> subprocess.Popen:
    """A long two-process run under torchrun, started in the background."""
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "facegan",
            "train", "--run-dir", str(run), "--epochs", "400", "--checkpoint-every", "4", *TINY]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_it_resumes(tmp_path):
    run = tmp_path / "run"
    launcher = long_two_process_run(run)
    deadline = time.monotonic() + 120
    while checkpoint.latest(run / "checkpoints") is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.latest(run / "checkpoints") is not None, "no checkpoint within 120 s"
    workers = children(launcher.pid)
    assert len(workers) == 2
    time.sleep(random.Random(os.getpid()).uniform(0, 2))  # a moment of any kind: in a step, between, saving
    os.kill(workers[1], signal.SIGKILL)  # the rank that does not write
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode != 0
    said = [line for line in out.splitlines() if "another process of the run went away" in line]
    assert len(said) == 1 and "run the same command to resume" in said[0], out[-3000:]
    assert "facegan/train" not in out  # no traceback through facegan's code (torchrun reports its child's end)
    saved = checkpoint.TrainingState.load(checkpoint.latest(run / "checkpoints")).step
    resumed = facegan("--run", run, "--epochs", "400", "--max-steps", str(saved + 8), *TINY, processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from {run / 'checkpoints' / checkpoint.name_for(saved)}" in resumed.stderr
    assert checkpoint.TrainingState.load(checkpoint.latest(run / "checkpoints")).step == saved + 8
    straight = facegan("--run", tmp_path / "straight", "--epochs", "400", "--max-steps", str(saved + 8), *TINY,
                       processes=2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert_close(weights(run), weights(tmp_path / "straight"), rtol=0, atol=0)  # bit for bit


@pytest.mark.slow
def test_a_stalled_rank_is_found_by_the_heartbeat_in_seconds(tmp_path):
    run = tmp_path / "run"
    launcher = long_two_process_run(run, FACEGAN_PEER_TIMEOUT="6")
    deadline = time.monotonic() + 120
    while checkpoint.latest(run / "checkpoints") is None and time.monotonic() < deadline:
        time.sleep(0.2)
    workers = children(launcher.pid)
    os.kill(workers[1], signal.SIGSTOP)  # alive, but never answers again
    stopped_at = time.monotonic()
    try:
        while launcher.poll() is None and time.monotonic() - stopped_at < 60:
            if not Path(f"/proc/{workers[0]}").exists():
                break
            time.sleep(0.5)
        assert time.monotonic() - stopped_at < 30, "rank 0 still waits on the stalled rank"
    finally:
        os.kill(workers[1], signal.SIGKILL)
    out, _ = launcher.communicate(timeout=60)
    assert "process 1 of the run has not answered for" in out and "run the same command to resume" in out


@pytest.mark.slow
def test_two_processes_train_a_translator_and_resume_it_exactly(tmp_path):
    """Without a pool, two processes train the translator one does: its faces differ by a
    few levels of 255, a tenth of another seed's difference (Adam's first steps move weights of
    near-zero gradient by the whole learning rate, in the sign their rounding gives). With one, both processes draw for
    the whole batch and keep one pool, so a two-process run resumes bit for bit; it
    differs from a one-process run in which slot each past fake takes (the processes
    gather the batch in another order)."""
    from facegan.data.prepare import prepare
    from tests.test_translate import stand_in_celeba

    stand_in_celeba(tmp_path / "celeba", count=32)
    prepare(tmp_path / "celeba", tmp_path / "cache", 32)
    cycle = ["--preset", "cycle64", "--domains", "Smiling", "--data", tmp_path / "cache", "--resolution", "32",
             "--g-width", "8", "--d-width", "8", "--blocks", "1", "--d-layers", "2", "--batch-size", "4",
             "--decay-from", "1", "--log-every", "2", "--threads", "1", "--precision", "fp32"]
    one = facegan("--run", tmp_path / "one", "--epochs", "2", "--pool", "0", *cycle)
    assert one.returncode == 0, one.stderr[-3000:]
    two = facegan("--run", tmp_path / "two", "--epochs", "2", "--pool", "0", *cycle, processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    other = facegan("--run", tmp_path / "other", "--epochs", "2", "--pool", "0", "--seed", "1", *cycle)
    assert other.returncode == 0, other.stderr[-3000:]
    faces = synthetic_faces(8, 32, seed=1)
    made = {}
    for run in ("one", "two", "other"):
        translator, _, _ = sample.load_generator(checkpoint.latest(tmp_path / run / "checkpoints"), CPU, "translator")
        made[run] = np.stack([editing.translate(translator, faces, to_b, CPU) for to_b in (True, False)]).astype(int)
    apart, seeds_apart = np.abs(made["one"] - made["two"]).mean(), np.abs(made["one"] - made["other"]).mean()
    print(f"one vs two processes: {apart:.2f} levels; vs another seed: {seeds_apart:.2f}")
    assert apart < seeds_apart / 5  # measured: 2.4 against 31

    pooled = facegan("--run", tmp_path / "pooled", "--epochs", "2", "--pool", "6", *cycle, processes=2)
    assert pooled.returncode == 0, pooled.stderr[-3000:]
    halves = facegan("--run", tmp_path / "halves", "--epochs", "1", "--pool", "6", *cycle, processes=2)
    assert halves.returncode == 0, halves.stderr[-3000:]
    resumed = facegan("--run", tmp_path / "halves", "--epochs", "2", "--pool", "6", *cycle, processes=2)
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-3000:]
    assert_close(weights(tmp_path / "pooled"), weights(tmp_path / "halves"), rtol=0, atol=0)
    assert int(weights(tmp_path / "pooled")["discriminator"]["pool_a.filled"]) == 6
