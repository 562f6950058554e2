"""Chaos: interrupt training at random moments, resume it each time, and compare the end
bitwise with a run that was never interrupted.

    python benchmarks/chaos.py [--interruptions 60] [--seed 0] [--keep DIR]

Trains a small model (16 px, built-in faces, mirror flips, DiffAugment, a moving
average: every kind of state a checkpoint holds) with `facegan train` in a child
process, and sends it kill -9, SIGINT or SIGTERM: some while the process starts (torch
import, drawing the faces), a fixed share while a checkpoint is being written, the rest
at random moments of training. After every interruption it checks every file the run
wrote (each checkpoint loads, config.toml parses, every picture decodes, metrics.jsonl
has at most a torn last line), then runs the same command again, which resumes. At the
end: the final weights, optimiser states, moving average, position and random state
against the uninterrupted run, and no process of the run left alive. Prints one JSON
line. Both runs use one thread, so that the same operations give the same bits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from PIL import Image

from facegan import configure
from facegan.errors import FaceganError
from facegan import checkpoint
from facegan.train.run import RunDir
from machine import describe

FLAGS = ["--preset", "dcgan64", "--resolution", "16", "--g-width", "32", "--d-width", "16",
         "--synthetic-count", "512", "--batch-size", "16", "--mirror", "--augment", "color,translation",
         "--ema-kimg", "0.5", "--log-every", "8", "--sample-count", "4", "--threads", "1", "--checkpoint-every", "8"]
SIGNALS = {"kill -9": signal.SIGKILL, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def command(run: Path, epochs: int) -> list[str]:
    return [sys.executable, "-m", "facegan", "train", "--run", str(run), "--epochs", str(epochs), *FLAGS]


def as_from_a_shell() -> None:
    """In the child: SIGINT at its default and unblocked, whatever the parent had."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """One `facegan train` process, its stderr read in the background to see training start."""

    def __init__(self, argv: list[str]):
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                        preexec_fn=as_from_a_shell)
        self.training = threading.Event()
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            if line.startswith(("training into", "resuming")):
                self.training.set()

    def wait(self, timeout: float = 300) -> int:
        code = self.process.wait(timeout)
        self.reader.join(5)
        return code


def writing_checkpoint(run: RunDir) -> bool:
    return run.checkpoints.is_dir() and any(p.name.endswith(".partial") for p in os.scandir(run.checkpoints))


def interrupt(child: Child, run: RunDir, moment: str, rng: random.Random) -> str:
    """Wait for ``moment``, then return; says what moment it really was."""
    if moment == "starting":
        time.sleep(rng.uniform(0.0, 3.0))
        return "starting" if not child.training.is_set() else "training"
    if not child.training.wait(120):
        raise RuntimeError("training never started:\n" + "".join(child.lines[-20:]))
    if moment == "writing a checkpoint":
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and child.process.poll() is None:
            if writing_checkpoint(run):
                return moment
            time.sleep(0.0005)
        return "training"  # none caught in time
    time.sleep(rng.uniform(0.0, 0.4))
    return "training"


def damaged_files(run: RunDir) -> tuple[list[str], int]:
    """Files under their real names that do not read back, and torn last lines of the log."""
    damaged = []
    for path in checkpoint.listing(run.checkpoints):
        try:
            checkpoint.load(path)
        except FaceganError as e:
            damaged.append(f"{path.name}: {e}")
    if run.config_path.exists():
        try:
            configure.file(run.config_path)
        except FaceganError as e:
            damaged.append(str(e))
    for path in [*run.samples.glob("*.png"), run.losses_plot, run.progress_gif]:
        if path.exists():
            try:
                with Image.open(path) as image:
                    image.verify()
            except Exception as e:  # any failure to decode is damage
                damaged.append(f"{path.name}: {e}")
    torn = 0
    if run.metrics_path.exists():
        lines = run.metrics_path.read_text().splitlines()
        for number, line in enumerate(lines):
            try:
                json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) - 1:
                    torn += 1  # a kill inside an append: tolerated when read, trimmed at the next start
                else:
                    damaged.append(f"metrics.jsonl line {number + 1}: {line[:40]!r}")
    return damaged, torn


def compare(a: dict, b: dict) -> tuple[bool, float]:
    """(bitwise equal, largest absolute difference) over every tensor and number of two checkpoints."""
    equal, largest = True, 0.0

    def walk(x, y, where):
        nonlocal equal, largest
        if isinstance(x, torch.Tensor):
            if x.shape != y.shape or not torch.equal(x, y):
                equal = False
                if x.shape == y.shape and x.is_floating_point():
                    largest = max(largest, (x.double() - y.double()).abs().max().item())
                else:
                    largest = float("inf")
        elif isinstance(x, dict):
            if x.keys() != y.keys():
                equal, largest = False, float("inf")
            for k in x.keys() & y.keys():
                walk(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            for i, (p, q) in enumerate(zip(x, y)):
                walk(p, q, f"{where}[{i}]")
        elif x != y:
            equal, largest = False, float("inf")

    skip = {"elapsed", "config"}  # wall-clock time; and the config, in which only --epochs may differ
    walk({k: v for k, v in a.items() if k not in skip}, {k: v for k, v in b.items() if k not in skip}, "")
    return equal, largest


def left_alive(run: Path) -> int:
    """Processes whose command line names the run directory (a worker stranded by a kill)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if str(run).encode() in (entry / "cmdline").read_bytes():
                    count += 1
            except OSError:
                pass
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interruptions", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=0, help="length of the run (default: enough for the interruptions)")
    parser.add_argument("--writing-share", type=float, default=0.3, help="share sent while a checkpoint is written")
    parser.add_argument("--starting-share", type=float, default=0.1, help="share sent while the process starts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    epochs = args.epochs or max(4, args.interruptions)  # 32 steps an epoch
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="facegan-chaos-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    straight = folder / "straight"
    reference = Child(command(straight, epochs))
    if reference.wait() != 0:
        raise SystemExit("the uninterrupted run failed:\n" + "".join(reference.lines[-20:]))
    reference_seconds = time.perf_counter() - started

    run = RunDir(folder / "chaos")
    counts = {name: 0 for name in SIGNALS}
    moments = {"starting": 0, "writing a checkpoint": 0, "training": 0}
    damaged, torn, resumes, exits = [], 0, 0, {}
    finished = False
    while not finished:
        child = Child(command(run.root, epochs))
        resumes += run.latest_checkpoint() is not None
        if sum(counts.values()) >= args.interruptions:
            finished = child.wait() == 0
            if not finished:
                raise SystemExit("the last, uninterrupted resume failed:\n" + "".join(child.lines[-20:]))
            break
        name = rng.choice(list(SIGNALS))
        draw = rng.random()
        wanted = ("starting" if draw < args.starting_share else
                  "writing a checkpoint" if draw < args.starting_share + args.writing_share else "training")
        moment = interrupt(child, run, wanted, rng)
        if child.process.poll() is None:
            child.process.send_signal(SIGNALS[name])
            counts[name] += 1
            moments[moment] += 1
        code = child.wait()
        exits[str(code)] = exits.get(str(code), 0) + 1
        if code not in (0, 130, 143, -signal.SIGKILL, -signal.SIGTERM, -signal.SIGINT):
            raise SystemExit(f"facegan train exited {code} after {name}:\n" + "".join(child.lines[-20:]))
        bad, torn_now = damaged_files(run)
        damaged += bad
        torn += torn_now
        finished = code == 0 and any(line.startswith("finished") for line in child.lines)
        # a run that ended in the meantime: the same command again would have nothing to do

    equal, largest = compare(checkpoint.load(checkpoint.latest(straight / "checkpoints")),
                             checkpoint.load(run.latest_checkpoint()))
    rows = run.read_metrics()
    steps = [r["step"] for r in rows if "loss_d" in r]
    result = {
        "bench": "chaos",
        "interruptions": sum(counts.values()), **{f"sent_{k.replace(' ', '').replace('-', '')}": v for k, v in counts.items()},
        "while_starting": moments["starting"], "while_writing_a_checkpoint": moments["writing a checkpoint"],
        "while_training": moments["training"], "resumes": resumes, "exit_codes": exits,
        "damaged_files": len(damaged), "torn_last_lines_seen": torn,
        "metrics_rows_out_of_order": sum(1 for a, b in zip(steps, steps[1:]) if b <= a),
        "partial_files_left": sum(1 for p in run.root.rglob("*") if p.name.endswith(".partial")),
        "processes_left": left_alive(run.root),
        "final_step": checkpoint.load(run.latest_checkpoint())["step"],
        "bitwise_equal": equal, "max_difference": largest,
        "reference_seconds": round(reference_seconds, 1), "seconds": round(time.perf_counter() - started, 1),
        "machine": describe(),
    }
    if damaged:
        result["damaged"] = damaged[:10]
    print(json.dumps(result), flush=True)
    return 0 if equal and not damaged and not result["processes_left"] else 1


if __name__ == "__main__":
    sys.exit(main())
