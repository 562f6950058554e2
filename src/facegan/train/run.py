"""A run directory: its layout, its config, its metrics log, and how a run starts or resumes.

    runs/<name>/
      config.toml              everything needed to repeat the run
      checkpoints/step-*.pt    see facegan.checkpoint
      checkpoints/best.pt      the checkpoint of the lowest FID so far (with eval.eval_every)
      samples/epoch-0001.png   a grid from the same fixed latents every epoch
      samples/step-00000123.png  the same grid where training stopped inside an epoch
      metrics.jsonl            one JSON object per log interval, and one per evaluation
      eval-reference-*.npy     Inception features of the training images evaluations compare with
      progress.gif, losses.png
      .lock                    held by the one process training the run (see RunLock)

Every file is written whole and atomically (facegan.files) except metrics.jsonl, which
is appended to; a torn last line is ignored when read and trimmed at the next start.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from facegan import checkpoint, configure, files, models
from facegan import config as cfg
from facegan.errors import FaceganError


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

    def stop_sample_path(self, step: int) -> Path:
        """The grid of a model stopped inside an epoch (its epoch's grid comes when the epoch ends)."""
        return self.samples / f"step-{step:08d}.png"

    def sample_paths(self) -> list[Path]:
        """The grids of finished epochs, in order."""
        return sorted(self.samples.glob("epoch-*.png"))

    def clear_temporaries(self) -> None:
        """Remove files a killed writer left half-written (never under a real name); call
        it holding the lock, when no other process writes here."""
        for folder in (self.root, self.checkpoints, self.samples):
            for stale in folder.glob(f".*{files.PARTIAL}"):
                stale.unlink(missing_ok=True)

    @contextmanager
    def lock(self) -> Iterator[str | None]:
        """Hold the run's lock while inside; yields a note when a dead process's lock was taken over."""
        held = RunLock(self.root / ".lock")
        note = held.acquire()
        try:
            yield note
        finally:
            held.release()

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
        """Drop rows logged after ``step`` (from 0: every row), and any torn line: training
        from ``step`` on logs them again."""
        if self.metrics_path.exists():
            rows = [r for r in self.read_metrics() if r.get("step", 0) <= step and step > 0]
            files.write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in rows))


class RunLock:
    """An exclusive lock on a run directory, so that two processes never train one run.

    The lock is ``flock`` on a lock file holding the holder's pid, host and start time:
    the kernel releases it when its process dies, however it dies, so a lock is never
    stuck. A file that still names a holder when the lock is free was left by a process
    that died without releasing it; taking it over says so.
    """

    def __init__(self, path: Path):
        self.path = path
        self.descriptor: int | None = None

    def acquire(self) -> str | None:
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise FaceganError(f"cannot write to run directory {self.path.parent}: {files.describe(e)}") from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode(errors="replace").strip() or "a process"
            os.close(descriptor)
            raise FaceganError(f"{self.path.parent} is being trained by another facegan process ({holder}); wait "
                               "for it to end or stop it, or train into another --run") from None
        previous = os.read(descriptor, 200).decode(errors="replace").strip()
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()} since "
                              f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self.descriptor = descriptor
        if previous:
            return f"took over the lock of {self.path.parent} left by {previous}, which is no longer running"
        return None

    def release(self) -> None:
        if self.descriptor is not None:
            os.ftruncate(self.descriptor, 0)  # an empty file: released in order, not left by a crash
            os.close(self.descriptor)
            self.descriptor = None


DEFAULT_PRESET = "thesis128"  # what `facegan train` trains when given no preset


def asked_for(preset: str | None, config_file: str | Path | None, notes: list[str] | None = None) -> cfg.Config:
    """The settings a command asks for: the preset (default thesis128), with the TOML
    file's settings on top when one is given (it needs only the fields it changes)."""
    base = configure.preset(preset or DEFAULT_PRESET)
    return configure.file(config_file, notes, base=base) if config_file else base


@dataclass
class RunPlan:
    """What ``train`` will do: the effective config, the checkpoint it resumes from (and
    its content, once read), and notes worth telling the user."""

    config: cfg.Config
    run: RunDir
    resume_from: Path | None
    resume_state: checkpoint.TrainingState | None = None
    notes: list[str] = field(default_factory=list)


def plan(
    run_dir: str | Path,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
) -> RunPlan:
    """Work out the effective config of a run, new or resumed.

    A run directory that already holds checkpoints is resumed: the config saved in its
    latest checkpoint is the base (config.toml is a copy for people), and ``overrides``
    may change training fields (more epochs, say) but not the model. ``resume=True``
    insists on that. Otherwise the base is the preset (default thesis128) with the config
    file on top, then ``overrides``.
    """
    run = RunDir(run_dir)
    overrides = overrides or {}
    latest = run.latest_checkpoint()
    if resume and latest is None:
        raise FaceganError(f"nothing to resume: {run.root} holds no checkpoint")
    notes: list[str] = []
    if latest is None:
        config = configure.override(asked_for(preset, config_file, notes), overrides)
        upscaler = models.family_of(config.model).kind == "upscaler"
        if upscaler and config.model.family_settings.adversarial and not config.train.start_from:
            notes.append("this adversarial upscaler starts from scratch: the recipe starts it from a trained PSNR "
                         "stage (--start-from runs/sr128), so that its critic judges detail, not blur")
        return RunPlan(config, run, None, notes=notes)

    state = checkpoint.TrainingState.load(latest)
    base = configure.from_dict(state.config, str(latest), notes)
    try:
        if configure.file(run.config_path) != base:
            notes.append(f"{run.config_path} differs from the settings saved in {latest.name}; resuming with the "
                         "checkpoint's (change training settings with flags; config.toml is rewritten to match)")
    except FaceganError as e:
        notes.append(f"{e}; resuming with the settings saved in {latest.name}")
    # the model the command asks for: its preset or file with its flags (the same command resumes)
    asked = asked_for(preset, config_file) if preset or config_file else base
    differences = cfg.model_differences(base.model, configure.override(asked, overrides).model)
    config = configure.override(base, overrides)
    if differences:
        raise FaceganError(
            f"cannot resume {run.root} with a different model ({'; '.join(differences)}); "
            "start a new run directory instead"
        )
    return RunPlan(config, run, latest, state, notes)


def describe(plan: RunPlan) -> str:
    """What ``train --dry-run`` shows: the run directory, the data, the effective config
    and both networks with their parameter counts. The networks are built on the meta
    device (nothing is allocated or computed), after the check that training them would
    fit in the device's memory."""
    import torch

    from facegan import models
    from facegan.data import describe_data
    from facegan.devices import resolve_device

    config = plan.config
    m, t = config.model, config.train
    models.check_fits(m, t.attribute_heads, t.ema_kimg > 0, resolve_device(t.device))
    family = models.family_of(m)
    with torch.device("meta"):
        generator, discriminator = models.build(m, t.attribute_heads)
    lines = [f"run directory: {plan.run.root}" + (f" (would resume {plan.resume_from})" if plan.resume_from else ""),
             f"data: {describe_data(config.data, m.resolution)}", cfg.to_toml(config)]
    for name, net, frozen in (("generator", generator, 0),
                              ("discriminator", discriminator, models.frozen_parameter_count(family, discriminator))):
        lines.append(f"{name}: {models.parameter_count(net):,} trainable parameters"
                     + (f", {frozen:,} frozen (pretrained or fixed, never trained)" if frozen else "") + f"\n{net}\n")
    return "\n".join(lines)
