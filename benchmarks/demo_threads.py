"""How many steps `facegan demo` trains in the same time with each thread setting, beside
other CPU-bound work: the default (one thread per idle core, measured at the start)
against every fixed count from 1 to the number of cores. One JSON line per variant, then
one with the default's share of the best.

    python benchmarks/demo_threads.py [--minutes 0.5] [--busy 1]

``--busy N`` starts N CPU-bound processes (busy loops) that run throughout, as other
work on a shared machine or laptop would; 0 measures an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def demo_steps(minutes: float, threads: int | None, folder: Path) -> int:
    """Steps the demo trained in ``minutes`` with ``--threads threads`` (None: the default)."""
    run = folder / f"demo-{threads}"
    command = [sys.executable, "-m", "facegan", "demo", "--minutes", str(minutes), "--run", str(run)]
    if threads is not None:
        command += ["--threads", str(threads)]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return max(r["step"] for r in rows if "step" in r)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--busy", type=int, default=1, help="CPU-bound processes running beside (default 1)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    common = {"bench": "demo_threads", "minutes": args.minutes, "busy_processes": args.busy, "cores": cores,
              "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    try:
        steps = {}
        with tempfile.TemporaryDirectory() as folder:
            for threads in [None, *range(1, cores + 1)]:
                name = "default" if threads is None else f"threads={threads}"
                steps[name] = demo_steps(args.minutes, threads, Path(folder))
                print(json.dumps({**common, "variant": name, "steps": steps[name]}), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    best = max(v for k, v in steps.items() if k != "default")
    print(json.dumps({**common, "variant": "ratio", "default_over_best": round(steps["default"] / best, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
