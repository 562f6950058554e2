"""Shared helpers: tiny, fast configurations that still train for real, and where the
real CelebA subset is (tests that need it skip when it is absent)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from facegan import config as cfg
from facegan import configure
from facegan.train.run import RunPlan, RunDir

# what facegan computes once and keeps (the built-in faces, reference features) goes to a
# folder of this test session's, not the user's ~/.cache/facegan
os.environ.setdefault("FACEGAN_CACHE", tempfile.mkdtemp(prefix="facegan-test-cache-"))

# $FACEGAN_CELEBA, else the shared subset beside the repository (../shared/data/celeba)
CELEBA = Path(os.environ.get("FACEGAN_CELEBA") or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba")
needs_celeba = pytest.mark.skipif(not (CELEBA / "img_align_celeba").is_dir(),
                                  reason=f"no CelebA root at {CELEBA} (set FACEGAN_CELEBA)")

TINY = dict(resolution=16, g_width=8, d_width=8, synthetic_count=64, batch_size=16, epochs=2, log_every=2, sample_count=4)


def tiny_config(preset: str = "dcgan64", **changes) -> cfg.Config:
    return configure.override(configure.preset(preset), {**TINY, **changes})


def tiny_plan(run_dir: Path, preset: str = "dcgan64", **changes) -> RunPlan:
    return RunPlan(tiny_config(preset, **changes), RunDir(run_dir), None)


def widened(generator):
    """``generator`` with its untrained weights drawn wide (std 0.3), so that different
    latents and labels make visibly different pictures (at the usual init they are all
    near grey)."""
    import torch

    with torch.no_grad():
        for weight in generator.parameters():
            if weight.dim() > 1:
                weight.normal_(0.0, 0.3)
    return generator


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"
