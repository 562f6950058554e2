"""Training and generation speed, eager against the fast path, side by side in one run.

    python benchmarks/train_speed.py                       # the device's default cases
    python benchmarks/train_speed.py --cases thesis128:16 dcgan64:128 --variants eager fast bf16
    python benchmarks/train_speed.py --cases cfaces64:64 cfaces64:64:attribute_loss=1 --variants fast

For each case (preset:batch, optionally :setting=value,... on top of the preset; a
conditional preset gets random 0/1 labels) and variant (a set of [speed] settings) it times real
training steps (the preset's own step, on a batch of random uint8 data from the real loader;
a growing model fully grown, where a run spends most of its time) and prints a JSON line:
images/s, ms per step, FLOPs per image (counted by torch.utils.flop_counter on one eager
step), achieved TFLOP/s, share of the device's peak where known, and peak memory. Then
generation: images/s of batched sampling and the latency of one image. A short table
follows the JSON lines.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from facegan import config as cfg
from facegan import configure, models
from facegan.conditions import attribute_names
from facegan.train.generation import set_up

VARIANTS = {
    "eager": dict(precision="fp32", channels_last="off", compile="off", cuda_graphs="off", fused_adam="off",
                  tf32="off", data_on_device="off"),
    "fast": {},  # every setting "auto": what facegan uses by default on this device
    "channels_last": dict(precision="fp32", channels_last="on", compile="off", cuda_graphs="off", fused_adam="off", tf32="off"),
    "compile": dict(precision="fp32", channels_last="off", compile="on", cuda_graphs="off", fused_adam="off", tf32="off"),
    "bf16": dict(precision="bf16", channels_last="off", compile="off", cuda_graphs="off", fused_adam="off", tf32="off"),
    "bf16_channels_last": dict(precision="bf16", channels_last="on", compile="off", cuda_graphs="off", fused_adam="off",
                               tf32="off"),
    "fused_adam": dict(precision="fp32", channels_last="off", compile="off", cuda_graphs="off", fused_adam="on", tf32="off"),
}
PEAK_BF16_TFLOPS = {"H100": 790.0, "H200": 989.0, "A100": 312.0}  # dense bf16, for the share of peak


def device_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_case(case: str) -> tuple[str, int, dict[str, str]]:
    """'preset:batch' or 'preset:batch:name=value,name=value' -> (preset, batch, settings)."""
    preset, batch, *rest = case.split(":")
    settings = dict(item.split("=", 1) for item in rest[0].split(",")) if rest else {}
    return preset, int(batch), settings


def build(case: str, variant: dict, device: torch.device, steps: int):
    preset, batch, settings = parse_case(case)
    config = configure.override(configure.preset(preset), {**settings, "batch_size": batch, "seed": 0})
    config = replace(config, speed=replace(cfg.SpeedConfig(), **variant))
    rng = np.random.default_rng(0)
    count = batch * (steps + 1)
    images = rng.integers(0, 256, (count, config.model.resolution, config.model.resolution, 3), dtype=np.uint8)
    attributes = len(attribute_names(config.model.attributes))
    labels = rng.integers(0, 2, (count, attributes)).astype(np.float32) if attributes else None
    setup = set_up(config, device, images, labels)
    setup.steps_taken = 2**40 // batch  # as if resumed late: a growing model is timed fully grown

    def one_step(real, real_labels):
        return setup.step(real, torch.randn(batch, config.model.z_dim, device=device), real_labels)

    return config, setup.fast, setup.generator, setup.loader, one_step


def time_training(case: str, name: str, device: torch.device, seconds: float, warmup: int) -> dict:
    """Warm up, then time as many steps as fit in about ``seconds`` (at least 3)."""
    config, plan, g, loader, one_step = build(case, VARIANTS[name], device, 0)
    batch = next(loader.epoch(0))  # one batch, reused: the loader is benchmarked on its own
    started = time.perf_counter()
    for _ in range(warmup):  # compilation, cuDNN autotuning, CUDA graph capture happen here
        one_step(*batch)
    sync(device)
    warm_s = time.perf_counter() - started
    started = time.perf_counter()
    one_step(*batch)
    sync(device)
    steps = max(3, round(seconds / (time.perf_counter() - started)))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(steps):
        figures = one_step(*batch)
    sync(device)
    seconds = time.perf_counter() - started
    assert all(torch.isfinite(v).all() for v in figures.values())
    return {"plan": plan.describe(), "steps": steps, "seconds": seconds, "warmup_s": warm_s,
            "peak_memory_mb": (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20}


def count_flops(case: str, device: torch.device) -> float:
    """FLOPs of one eager training step, per image."""
    _, _, _, loader, one_step = build(case, VARIANTS["eager"], device, 1)
    batch = next(loader.epoch(0))
    with FlopCounterMode(display=False) as counter:
        one_step(*batch)
    return counter.get_total_flops() / len(batch[0])


def time_generation(preset: str, device: torch.device, batch: int = 64, repeats: int = 3) -> dict:
    config = configure.preset(preset)
    torch.manual_seed(0)
    generator, _ = models.build(config.model)
    generator.to(device).eval()
    z = torch.randn(batch, config.model.z_dim, device=device)
    attributes = len(attribute_names(config.model.attributes))
    y = torch.randint(0, 2, (batch, attributes), device=device).float() if attributes else None

    def g(z):
        return generator(z, None if y is None else y[: len(z)])

    with torch.no_grad():
        g(z[:1]), g(z)
        sync(device)
        started = time.perf_counter()
        for _ in range(repeats):
            g(z)
        sync(device)
        batched = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(repeats):
            g(z[:1])
        sync(device)
        single = time.perf_counter() - started
    return {"images_per_s": round(repeats * batch / batched, 1), "one_image_ms": round(single / repeats * 1000, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", nargs="*", help="preset:batch ... (default: by device)")
    parser.add_argument("--variants", nargs="*", default=None, help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--seconds", type=float, default=None, help="timed seconds per variant (default: 3 on CUDA, 10 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 10 on CUDA, 1 on CPU)")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = args.cases or (["thesis128:16", "thesis128:128", "dcgan64:128"] if cuda else ["thesis128:16", "dcgan64:128", "demo:32"])
    for case in cases:  # the steps timed here are a generator's: latents in, faces out
        kind = models.family_of(configure.preset(parse_case(case)[0]).model).kind
        if kind != "generator":
            parser.error(f"{case}: a {kind}; this benchmark times generators only (a {kind}'s training speed: "
                         "facegan train --preset PRESET --max-steps 100 --log-every 20, images_per_s in metrics.jsonl)")
    # bf16 is left out on a CPU by default: without native bf16 it ran 10-15x slower there
    variants = args.variants or (["eager", "fast"] if cuda else [v for v in VARIANTS if v != "bf16"])
    seconds = args.seconds or (3.0 if cuda else 10.0)
    warmup = args.warmup if args.warmup is not None else (10 if cuda else 1)
    peak = device_peak(device)
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    rows = []
    for case in cases:
        _, batch, _ = parse_case(case)
        flops = count_flops(case, device)
        for variant in variants:
            try:
                measured = time_training(case, variant, device, seconds, warmup)
            except Exception as e:  # a variant that cannot run here is reported, not fatal
                row = {"bench": "train_speed", "device": name, "case": case, "variant": variant,
                       "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
                print(json.dumps(row), flush=True)
                continue
            steps = measured["steps"]
            images_per_s = steps * batch / measured["seconds"]
            tflops = flops * images_per_s / 1e12
            row = {"bench": "train_speed", "device": name, "threads": torch.get_num_threads(), "case": case,
                   "variant": variant, "plan": measured["plan"], "steps": steps,
                   "images_per_s": round(images_per_s, 2), "ms_per_step": round(measured["seconds"] / steps * 1000, 2),
                   "gflop_per_image": round(flops / 1e9, 3), "tflop_per_s": round(tflops, 4),
                   "share_of_peak": round(tflops / peak, 4) if peak else None,
                   "warmup_s": round(measured["warmup_s"], 2), "peak_memory_mb": round(measured["peak_memory_mb"], 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for preset in sorted({parse_case(c)[0] for c in cases}):
        row = {"bench": "generate_speed", "device": name, "preset": preset, **time_generation(preset, device)}
        print(json.dumps(row), flush=True)
    width = max([15] + [len(r["case"]) + 2 for r in rows])
    print(f"\n{'case':<{width}}{'variant':<15}{'img/s':>10}{'ms/step':>10}{'GFLOP/img':>11}{'TFLOP/s':>9}{'vs eager':>9}")
    for row in rows:
        base = next((r for r in rows if r["case"] == row["case"] and r["variant"] == "eager"), None)
        ratio = f"{row['images_per_s'] / base['images_per_s']:.2f}x" if base else ""
        print(f"{row['case']:<{width}}{row['variant']:<15}{row['images_per_s']:>10.1f}{row['ms_per_step']:>10.1f}"
              f"{row['gflop_per_image']:>11.2f}{row['tflop_per_s']:>9.3f}{ratio:>9}")


if __name__ == "__main__":
    sys.exit(main())
