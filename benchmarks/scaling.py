"""Images/s of one training process against N under torchrun, side by side.

    python benchmarks/scaling.py [--preset faces64] [--processes 2] [--steps 60] [--device cpu|cuda]

Trains the preset on the built-in faces for --steps steps, at the same global batch,
once in one process and once in N (torchrun --standalone, one GPU each on CUDA; on a
CPU each process gets cores/N threads and the single process all of them), and reads
the images/s the runs logged past their first log interval (compiling, warm-up). Prints
a JSON line per run and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe


def images_per_s(run: Path) -> float:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"images_per_s"' in line]
    later = rows[1:] or rows
    return sum(r["images_per_s"] for r in later) / len(later)


def train(run: Path, processes: int, threads: int, args: argparse.Namespace) -> float:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
                if processes > 1 else [sys.executable])
    command = [*launcher, "-m", "facegan", "train", "--preset", args.preset, "--run-dir", str(run), "--data", "",
               "--synthetic-count", "4096", "--max-steps", str(args.steps), "--epochs", "1000",
               "--log-every", str(max(args.steps // 4, 1)), "--device", args.device, "--threads", str(threads),
               "--eval-every", "0"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return images_per_s(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="faces64")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    rates = {}
    with tempfile.TemporaryDirectory() as scratch:
        for processes in (1, args.processes):
            threads = 1 if args.device == "cuda" else max(cores // processes, 1)
            rates[processes] = train(Path(scratch) / f"p{processes}", processes, threads, args)
            print(json.dumps({"bench": "scaling", "preset": args.preset, "device": args.device, "processes": processes,
                              "threads_each": threads, "images_per_s": round(rates[processes], 2)}), flush=True)
    print(json.dumps({"bench": "scaling", "machine": describe(),
                      "speedup": round(rates[args.processes] / rates[1], 3)}))


if __name__ == "__main__":
    main()
