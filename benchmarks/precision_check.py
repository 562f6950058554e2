"""Does bf16 training behave like fp32? Train the same preset, seed and steps both ways.

    python benchmarks/precision_check.py [--preset thesis128] [--minutes 1] [--steps N]

The bf16 run trains for --minutes (or --steps), the fp32 run for the same number of
steps; everything else (seed, data: the built-in faces, other [speed] settings) is the
same. Prints both loss curves as JSON lines, then a summary line comparing them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from facegan import config as cfg
from facegan.train.run import RunDir, RunPlan
from facegan.train.trainer import train


def run(config: cfg.Config, folder: Path) -> tuple[dict, list[dict]]:
    summary = train(RunPlan(config, RunDir(folder), None))
    return summary, RunDir(folder).read_metrics()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="thesis128")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=0, help="fixed step count instead of --minutes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--images", type=int, default=4096, help="built-in faces to train on")
    args = parser.parse_args()
    base = cfg.override(cfg.load_preset(args.preset), {
        "device": args.device, "epochs": 100_000, "log_every": args.log_every, "synthetic_count": args.images,
        "data": "", "max_steps": args.steps, "time_limit": 0.0 if args.steps else args.minutes,
        "keep_checkpoints": 1})
    with tempfile.TemporaryDirectory() as scratch:
        bf16_summary, bf16 = run(cfg.override(base, {"precision": "bf16"}), Path(scratch) / "bf16")
        fp32_summary, fp32 = run(cfg.override(base, {"precision": "fp32", "time_limit": 0.0,
                                                     "max_steps": bf16_summary["step"]}), Path(scratch) / "fp32")
    for name, rows in (("bf16", bf16), ("fp32", fp32)):
        for r in rows:
            print(json.dumps({"bench": "precision_check", "precision": name, **r}))
    common = sorted({r["step"] for r in bf16} & {r["step"] for r in fp32})
    tail = common[len(common) // 2 :]  # the second half of training
    by_step = {name: {r["step"]: r for r in rows} for name, rows in (("bf16", bf16), ("fp32", fp32))}
    summary = {"bench": "precision_check", "preset": args.preset, "steps": bf16_summary["step"],
               "bf16_seconds": bf16_summary["seconds"], "fp32_seconds": fp32_summary["seconds"]}
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        a = np.array([by_step["bf16"][s][key] for s in tail])
        b = np.array([by_step["fp32"][s][key] for s in tail])
        summary[f"{key}_bf16_mean"] = round(float(a.mean()), 4)
        summary[f"{key}_fp32_mean"] = round(float(b.mean()), 4)
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
