"""``facegan demo``: a small GAN learns the built-in faces under a time budget, and the
sliced Wasserstein distance to those faces is measured before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from facegan import configure
from facegan import models
from facegan import sample
from facegan.data import load_images
from facegan.metrics.swd import sliced_wasserstein
from facegan.train.run import RunPlan, RunDir
from facegan.devices import resolve_device, threads_for_idle_cores
from facegan.train.trainer import Observer, train

MEASURE_N = 512  # samples and real faces compared by the distance


def free_run_dir(base: str = "runs/demo") -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that does not exist yet."""
    candidate, n = Path(base), 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{base}-{n}")
    return candidate


def run_demo(run_dir: str | None = None, observer: Observer | None = None, **settings: Any) -> dict[str, Any]:
    """Train the ``demo`` preset (with ``settings`` overriding it, e.g. time_limit=4). With
    no ``threads`` setting (or 0) it uses one thread per core other work leaves idle: the
    demo is the first thing a newcomer runs, often on a busy machine."""
    if not settings.get("threads"):
        settings = {**settings, "threads": threads_for_idle_cores()}
    config = configure.override(configure.preset("demo"), settings)
    run = RunDir(run_dir or free_run_dir())
    images, _, _ = load_images(config.data, config.model.resolution)
    device = resolve_device(config.train.device)

    torch.manual_seed(config.train.seed)  # the same initial generator that training starts from
    untrained, _ = models.build(config.model)
    real = images[:MEASURE_N]
    before = sliced_wasserstein(sample.generate(untrained.to(device).eval(), MEASURE_N, 1, device), real)

    summary = train(RunPlan(config, run, None), observer, images)
    trained, _, _ = sample.load_generator(summary["checkpoint"], device)
    faces = sample.generate(trained, MEASURE_N, 1, device)
    after = sliced_wasserstein(faces, real)
    return {
        "run": str(run.root),
        "swd_before": before,
        "swd_after": after,
        "faces": faces,  # the MEASURE_N samples measured after training (uint8 N, H, W, 3)
        "samples": summary["samples"],
        "progress": str(run.progress_gif),
        "losses": str(run.losses_plot),
        "summary": summary,
    }
