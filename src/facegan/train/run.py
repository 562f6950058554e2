"""A run directory: its layout, its config, its metrics log, and how a run starts or resumes.

    runs/<name>/
      config.toml              everything needed to repeat the run
      checkpoints/step-*.pt    see facegan.train.checkpoint
      checkpoints/best.pt      the checkpoint of the lowest FID so far (with eval.eval_every)
      samples/epoch-0001.png   a grid from the same fixed latents every epoch
      metrics.jsonl            one JSON object per log interval, and one per evaluation
      eval-reference-*.npy     Inception features of the training images evaluations compare with
      progress.gif, losses.png
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facegan import config as cfg
from facegan.errors import FaceganError
from facegan.train import checkpoint


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config_path = self.root / "config.toml"
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"
        self.best_checkpoint = self.checkpoints / "best.pt"
        self.metrics_path = self.root / "metrics.jsonl"
        self.losses_plot = self.root / "losses.png"
        self.progress_gif = self.root / "progress.gif"

    def create(self) -> None:
        """Make the folders, or explain in one line why they cannot be made."""
        try:
            for folder in (self.root, self.checkpoints, self.samples):
                folder.mkdir(parents=True, exist_ok=True)
            probe = self.root / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise FaceganError(f"cannot write to run directory {self.root}: {e.strerror or e}") from None

    def latest_checkpoint(self) -> Path | None:
        return checkpoint.latest(self.checkpoints)

    def sample_path(self, epoch: int) -> Path:
        return self.samples / f"epoch-{epoch:04d}.png"

    def sample_paths(self) -> list[Path]:
        return sorted(self.samples.glob("epoch-*.png"))

    def append_metrics(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """The metric rows; a torn last line (from a crash mid-write) is ignored."""
        if not self.metrics_path.exists():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows

    def truncate_metrics(self, step: int) -> None:
        """Drop rows logged after ``step``: on resume they would be logged again."""
        rows = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        self.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@dataclass
class RunPlan:
    """What ``train`` will do: the effective config, and the checkpoint it resumes from."""

    config: cfg.Config
    run: RunDir
    resume_from: Path | None


def plan(
    run_dir: str | Path,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
) -> RunPlan:
    """Work out the effective config of a run, new or resumed.

    A run directory that already holds checkpoints is resumed: its own config.toml is
    the base, and ``overrides`` may change training fields (more epochs, say) but not
    the model. ``resume=True`` insists on that. Otherwise the base is the preset or
    config file, then ``overrides``.
    """
    run = RunDir(run_dir)
    overrides = overrides or {}
    latest = run.latest_checkpoint()
    if resume and latest is None:
        raise FaceganError(f"nothing to resume: {run.root} holds no checkpoint")
    if latest is None:
        if preset and config_file:
            raise FaceganError("give --preset or --config, not both")
        base = cfg.load_file(config_file) if config_file else cfg.load_preset(preset or "thesis128")
        return RunPlan(cfg.validate(cfg.override(base, overrides)), run, None)

    base = cfg.load_file(run.config_path) if run.config_path.exists() else None
    if base is None:
        raise FaceganError(f"{run.root} has checkpoints but no config.toml; cannot resume")
    wanted = cfg.load_file(config_file) if config_file else cfg.load_preset(preset) if preset else base
    differences = cfg.model_differences(base.model, wanted.model)
    config = cfg.validate(cfg.override(base, overrides))
    differences += [d for d in cfg.model_differences(base.model, config.model) if d not in differences]
    if differences:
        raise FaceganError(
            f"cannot resume {run.root} with a different model ({'; '.join(differences)}); "
            "start a new run directory instead"
        )
    return RunPlan(config, run, latest)
