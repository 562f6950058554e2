"""Does bf16 training behave like fp32? Train the same preset, seed and steps both ways.

    python benchmarks/precision_check.py [--preset thesis128] [--minutes 1] [--steps N] [--fid-n 256] [--seeds K] [--seed S]

The bf16 run trains for --minutes (or --steps), the fp32 run for the same number of
steps; everything else (seed, data: the built-in faces, other [speed] settings) is the
same. A third run, fp32 with the next seed, measures how far two equally good runs
differ; --seeds K trains both precisions at K seeds, from --seed S on (the preset's
seed if not given: a later check can add seeds to an earlier one). Prints each run's
FID as it is measured, the first seed's loss curves as JSON lines, then a summary
line: the mean losses over the second half of training, and the FID of each run's
final generator (--fid-n samples against as many training images), per precision its
mean and range: bf16 tracks fp32 when its runs fall inside the spread of fp32's seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from facegan import config as cfg
from facegan import configure
from facegan import sample
from facegan.data import load_images
from facegan.metrics.evaluate import DuringTraining
from facegan.train.run import RunDir, RunPlan
from facegan.devices import resolve_device
from facegan.train.trainer import train
from machine import describe


def run(config: cfg.Config, folder: Path) -> tuple[dict, list[dict]]:
    summary = train(RunPlan(config, RunDir(folder), None))
    return summary, RunDir(folder).read_metrics()


def fid_of(config: cfg.Config, folder: Path, n: int) -> float:
    """FID of the run's final generator: ``n`` samples against ``n`` of its training images."""
    device = resolve_device(config.train.device)
    images, _, _ = load_images(config.data, config.model.resolution)
    generator, _, _ = sample.load_generator(RunDir(folder).latest_checkpoint(), device)
    return DuringTraining(replace(config.eval, eval_n=n), images, folder, config.train.seed, device)(generator)["fid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="thesis128")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=0, help="fixed step count instead of --minutes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--images", type=int, default=4096, help="built-in faces to train on")
    parser.add_argument("--fid-n", type=int, default=256, help="samples for each final FID (0: none)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="train bf16 and fp32 at this many seeds (1: bf16 at one seed, fp32 at two)")
    parser.add_argument("--seed", type=int, default=None, help="the first seed (default: the preset's)")
    args = parser.parse_args()
    base = configure.override(configure.preset(args.preset), {
        "device": args.device, "epochs": 100_000, "log_every": args.log_every, "synthetic_count": args.images,
        "data": "", "max_steps": args.steps, "time_limit": 0.0 if args.steps else args.minutes,
        "keep_checkpoints": 1, **({} if args.seed is None else {"seed": args.seed})})
    seed = base.train.seed
    with tempfile.TemporaryDirectory() as scratch:
        configs = {"bf16": configure.override(base, {"precision": "bf16"})}
        bf16_summary, bf16 = run(configs["bf16"], Path(scratch) / "bf16")
        same_steps = {"time_limit": 0.0, "max_steps": bf16_summary["step"]}
        configs["fp32"] = configure.override(base, {**same_steps, "precision": "fp32"})
        for k in range(1, max(args.seeds, 2 if args.fid_n else 1)):  # seed by seed: a cut-short check stays balanced
            configs[f"fp32_seed{seed + k}"] = configure.override(base, {**same_steps, "precision": "fp32", "seed": seed + k})
            if k < args.seeds:
                configs[f"bf16_seed{seed + k}"] = configure.override(base, {**same_steps, "precision": "bf16",
                                                                       "seed": seed + k})
        fp32_summary, fp32 = run(configs["fp32"], Path(scratch) / "fp32")
        fids = {}
        if args.fid_n:
            for name, config in configs.items():
                if name not in ("bf16", "fp32"):
                    run(config, Path(scratch) / name)
                fids[name] = round(fid_of(config, Path(scratch) / name, args.fid_n), 2)
                print(json.dumps({"bench": "precision_check", "run": name, "seed": config.train.seed,
                                  "fid": fids[name]}), flush=True)
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
    if fids:
        by_precision = {p: [v for name, v in fids.items() if name.startswith(p)] for p in ("bf16", "fp32")}
        summary.update({f"fid_{name}": value for name, value in fids.items()}, fid_n=args.fid_n)
        for p, values in by_precision.items():
            summary[f"fid_{p}_mean"] = round(float(np.mean(values)), 2)
            summary[f"fid_{p}_range"] = [min(values), max(values)]
        # bf16 tracks fp32 when its runs fall inside the spread of fp32's seeds
        low, high = summary["fid_fp32_range"]
        summary["bf16_all_within_fp32_spread"] = all(low <= v <= high for v in by_precision["bf16"])
        summary["bf16_mean_within_fp32_spread"] = low <= summary["fid_bf16_mean"] <= high
    summary["machine"] = describe()
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.exit(main())
