"""The training loop: batches in, steps, logs, sample grids and checkpoints out.

The loop never prints. It reports to an ``Observer`` (the command line draws a
progress bar from it) and writes everything else into the run directory.

Resuming is exact: the data order of an epoch depends only on (seed, epoch), a
checkpoint records how many batches of the current epoch were done, and the global
random state (latents, dropout, flips) is saved and restored with the weights. A
checkpoint only ever holds whole steps: signals ask the loop to stop between steps
(facegan.train.stopping).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facegan import checkpoint, models, sample
from facegan import config as cfg
from facegan import images as imaging
from facegan.conditions import Conditions, attribute_names
from facegan.data import load_images
from facegan.data.loader import BatchLoader
from facegan.errors import FaceganError
from facegan.train import augment, report, speed
from facegan.train.run import RunPlan
from facegan.train.ema import MovingAverage
from facegan.train.steps import STEPS, Objective
from facegan.train.stopping import StopRequest

STOPPED_BY = {"SIGINT": "interrupted", "SIGTERM": "terminated"}  # the summary's reason for each signal

# Evaluation during training (eval.eval_every) is given to ``train`` from above, so that
# training does not depend on the metrics: a factory called once as
# factory(settings, training images, run directory, seed, device, conditions), whose
# result is called every eval_every epochs as evaluate(generator, progress) -> figures
# (at least "fid" and "diversity"). facegan.metrics.evaluate.DuringTraining is one.
Evaluation = Callable[[torch.nn.Module, Callable[[int, int], None]], dict[str, float]]
EvaluatorFactory = Callable[[cfg.EvalConfig, np.ndarray, Path, int, torch.device, "Conditions | None"], Evaluation]


class Observer:
    """Hooks the trainer calls; override what you need."""

    def on_prepare(self, done: int, total: int) -> None: ...
    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, step: int) -> None: ...
    def on_log(self, record: dict[str, Any]) -> None: ...
    def on_epoch(self, epoch: int, sample: Path, saved: Path) -> None: ...
    def on_evaluating(self, done: int, total: int) -> None: ...
    def on_eval(self, record: dict[str, Any]) -> None: ...
    def on_note(self, message: str) -> None: ...
    def on_signal(self, name: str, aborting: bool, last_checkpoint: Path | None) -> None: ...
    def on_end(self, summary: dict[str, Any]) -> None: ...


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FaceganError(f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FaceganError(f"device {name} was asked for but CUDA is not available here")
    return device


class _Running:
    """Per-step figures summed on the device; read back (one sync) only when logged. A
    figure not given every step (R1, on its steps only) is averaged over its own steps."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, figures: dict[str, torch.Tensor]) -> None:
        for k, v in figures.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
            self.counts[k] = self.counts.get(k, 0) + 1
        self.steps += 1

    def flush(self, batch_size: int) -> dict[str, float]:
        means = {k: round(v.item() / self.counts[k], 5) for k, v in self.sums.items()}
        seconds = time.perf_counter() - self.started
        means["images_per_s"] = round(self.steps * batch_size / max(seconds, 1e-9), 2)
        self.reset()
        return means


@dataclass
class TrainingSetup:
    """Everything one training step needs, made the same way for training, benchmarks and tests."""

    config: cfg.Config
    device: torch.device
    fast: speed.SpeedPlan
    generator: torch.nn.Module  # the networks themselves: optimisers and checkpoints use these
    discriminator: torch.nn.Module
    g_optimizer: torch.optim.Optimizer
    d_optimizer: torch.optim.Optimizer
    g_train: torch.nn.Module  # what the step calls: the networks, or their compiled wrappers
    d_train: torch.nn.Module
    loader: BatchLoader
    objective: Objective
    average: MovingAverage | None  # the generator's moving average, when train.ema_kimg > 0
    steps_taken: int = 0  # set on resume: lazy R1 and the average's ramp-up count steps

    def step(self, real: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One training step on a real batch (and its labels, for a conditional model)."""
        self.steps_taken += 1
        if self.fast.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        figures = STEPS[self.config.train.step](self.g_train, self.d_train, self.g_optimizer, self.d_optimizer,
                                                real, z, self.objective, self.steps_taken,
                                                lambda: self.fast.autocast(self.device), labels)
        if self.average is not None:
            batch = self.config.train.batch_size
            self.average.update(self.generator, batch, self.steps_taken * batch)
        return figures

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that samples, evaluations and checkpoints' users see: the average if kept."""
        return self.average.module if self.average is not None else self.generator


def set_up(config: cfg.Config, device: torch.device, images: np.ndarray,
           labels: np.ndarray | None = None) -> TrainingSetup:
    """Resolve the [speed] settings, then build (seeded) networks, optimisers and the loader
    (of ``images``, and of their ``labels`` for a conditional model)."""
    m, t = config.model, config.train
    fast = speed.resolve(config.speed, device, images.nbytes)
    speed.apply_globals(fast)
    torch.manual_seed(t.seed)
    generator, discriminator = models.build(m, attribute_head=t.attribute_loss > 0)
    generator.to(device)
    discriminator.to(device)
    return TrainingSetup(
        config, device, fast, generator, discriminator,
        speed.adam(generator.parameters(), t.g_lr, (t.beta1, t.beta2), t.adam_eps, fast),
        speed.adam(discriminator.parameters(), t.d_lr, (t.beta1, t.beta2), t.adam_eps, fast),
        speed.prepare_network(generator, fast), speed.prepare_network(discriminator, fast),
        BatchLoader(images, t.batch_size, t.seed, device, generator.output_range, config.data.mirror,
                    channels_last=fast.channels_last, on_device=fast.data_on_device, labels=labels),
        Objective(t.loss, t.r1_gamma, t.r1_every, augment.policies(t.augment), generator.output_range,
                  t.attribute_loss),
        MovingAverage(generator, t.ema_kimg) if t.ema_kimg > 0 else None,
    )


def train(plan: RunPlan, observer: Observer | None = None, images: np.ndarray | None = None,
          labels: np.ndarray | None = None, evaluator: EvaluatorFactory | None = None) -> dict[str, Any]:
    """Train (or resume) the run described by ``plan``; returns a summary. ``images`` (and,
    for a conditional model, their ``labels``) replace the configured data set;
    ``evaluator`` makes the evaluation run every eval.eval_every epochs (see above).

    The run directory is locked while training. A run that fails before its first
    checkpoint removes the directory it made, so a failed start leaves nothing behind.
    """
    observer = observer or Observer()
    run = plan.run
    created = not run.root.exists()
    run.create()
    with run.lock() as note:
        if note:
            observer.on_note(note)
        try:
            return _train(plan, observer, images, labels, evaluator)
        except BaseException:
            if created and run.latest_checkpoint() is None:
                shutil.rmtree(run.root, ignore_errors=True)
            raise


def _train(plan: RunPlan, observer: Observer, images: np.ndarray | None, labels: np.ndarray | None,
           make_evaluator: EvaluatorFactory | None) -> dict[str, Any]:
    config, run = plan.config, plan.run
    m, t = config.model, config.train
    if config.eval.eval_every and make_evaluator is None:
        raise FaceganError("eval.eval_every needs an evaluator (facegan train gives it one; a library caller passes "
                           "evaluator=facegan.metrics.evaluate.DuringTraining)")
    device = resolve_device(t.device)
    for note in plan.notes:
        observer.on_note(note)
    state = plan.resume_state
    if plan.resume_from is not None:  # checked before anything slow
        state = state or checkpoint.TrainingState.load(plan.resume_from)
        saved_model = cfg.from_dict(state.config, str(plan.resume_from)).model
        differences = cfg.model_differences(saved_model, m)
        if differences:
            raise FaceganError(f"checkpoint {plan.resume_from} is of a different model ({'; '.join(differences)})")
    models.check_fits(m, t.attribute_loss > 0, t.ema_kimg > 0, device)
    names = attribute_names(m.attributes)
    if images is None:
        images, labels, data_line = load_images(config.data, m.resolution, observer.on_prepare, names)
    else:
        data_line = f"{len(images):,} given images"
    if names and (labels is None or labels.shape != (len(images), len(names))):
        raise FaceganError(f"a model conditioned on {', '.join(names)} needs one label per image and attribute")
    conditions = Conditions.of(names, labels) if names else None
    setup = set_up(config, device, images, labels)
    generator, discriminator = setup.generator, setup.discriminator
    g_optimizer, d_optimizer, loader = setup.g_optimizer, setup.d_optimizer, setup.loader
    if loader.steps_per_epoch == 0:
        raise FaceganError(f"the data set has {len(images)} images, fewer than one batch of {t.batch_size}")
    cfg.save_file(config, run.config_path)

    step = epoch = position = 0
    elapsed = 0.0
    if state is not None:
        generator.load_state_dict(state.generator)
        discriminator.load_state_dict(state.discriminator)
        g_optimizer.load_state_dict(state.g_optimizer)
        d_optimizer.load_state_dict(state.d_optimizer)
        step, epoch, position, elapsed = state.step, state.epoch, state.position, state.elapsed
        setup.steps_taken = step
        if setup.average is not None:  # a run that starts averaging on resume starts from its generator
            setup.average.module.load_state_dict(state.sampling_generator)
        torch.set_rng_state(state.rng["torch"].cpu())
        if device.type == "cuda" and "cuda" in state.rng:
            torch.cuda.set_rng_state_all([s.cpu() for s in state.rng["cuda"]])
        if position >= loader.steps_per_epoch:  # a smaller epoch now (a bigger batch, fewer images)
            observer.on_note(f"the checkpoint stopped {position:,} batches into epoch {epoch + 1}, which now has "
                             f"{loader.steps_per_epoch:,}: epoch {epoch + 1} counts as done")
            epoch, position = epoch + 1, 0
    run.truncate_metrics(step)  # rows past the checkpoint (or, new, from a failed start) come again
    latents = sample.latents(t.sample_count, m.z_dim, t.seed).to(device)  # every epoch's grid: the same faces
    grid_labels = None if conditions is None else torch.from_numpy(conditions.sample(t.sample_count, t.seed)).to(device)
    evaluator = (make_evaluator(config.eval, images, run.root, t.seed, device, conditions)
                 if config.eval.eval_every else None)
    best_fid = min((r["fid"] for r in run.read_metrics() if "fid" in r), default=float("inf"))
    session_start = time.perf_counter()
    saved = plan.resume_from  # the newest checkpoint
    rolling: Path | None = None  # the newest checkpoint saved because one was due, if kept only until the next
    last_saved_at = session_start

    def write_state(path: Path) -> Path:
        rng = {"torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint.TrainingState(
            config=config.to_dict(), generator=generator.state_dict(), discriminator=discriminator.state_dict(),
            g_optimizer=g_optimizer.state_dict(), d_optimizer=d_optimizer.state_dict(),
            step=step, epoch=epoch, position=position, rng=rng,
            elapsed=elapsed + time.perf_counter() - session_start,
            generator_ema=setup.average.module.state_dict() if setup.average is not None else None,
            conditions=conditions.state() if conditions is not None else None,
        ).save(path)
        return path

    def save_checkpoint(due: bool = False) -> Path:
        """Save the state after ``step``; one saved only because it was ``due`` is kept
        only until the next checkpoint."""
        nonlocal saved, rolling, last_saved_at
        path = write_state(run.checkpoints / checkpoint.name_for(step))
        if rolling is not None and rolling != path:
            rolling.unlink(missing_ok=True)
        rolling = path if due else None
        checkpoint.prune(run.checkpoints, t.keep_checkpoints)
        saved, last_saved_at = path, time.perf_counter()
        return path

    def checkpoint_due() -> bool:
        if t.checkpoint_every and step % t.checkpoint_every == 0:
            return True
        return bool(t.checkpoint_minutes) and time.perf_counter() - last_saved_at >= t.checkpoint_minutes * 60

    running = _Running()

    def evaluate_now() -> None:
        nonlocal best_fid
        started = time.perf_counter()
        figures = evaluator(setup.sampler, observer.on_evaluating)
        record = {"step": step, "epoch": epoch, "eval_n": config.eval.eval_n,
                  **{k: round(v, 5) for k, v in figures.items()},
                  "eval_seconds": round(time.perf_counter() - started, 2)}
        if figures["fid"] < best_fid:
            best_fid = figures["fid"]
            record["best"] = str(write_state(run.best_checkpoint))
        if figures["diversity"] < config.eval.collapse_alarm:
            record["warning"] = (
                f"possible mode collapse: sample diversity is {figures['diversity']:.2f} of the real data's, below "
                f"eval.collapse_alarm {config.eval.collapse_alarm:.2f}; look at {run.sample_path(epoch)}")
        run.append_metrics(record)
        observer.on_eval(record)

    def log() -> None:
        if running.steps == 0:
            return
        record = {"step": step, "epoch": round(epoch + position / loader.steps_per_epoch, 4)}
        record.update(running.flush(t.batch_size))
        record["elapsed_s"] = round(elapsed + time.perf_counter() - session_start, 2)
        run.append_metrics(record)
        observer.on_log(record)

    observer.on_start(
        {
            "run": str(run.root),
            "device": str(device),
            "speed": setup.fast.describe(),
            "images": len(images),
            "data": data_line,
            "steps_per_epoch": loader.steps_per_epoch,
            "start_step": step,
            "total_steps": min(t.epochs * loader.steps_per_epoch, t.max_steps or float("inf")),
            "time_limit_s": t.time_limit * 60,
            "resumed_from": str(plan.resume_from) if plan.resume_from else None,
            "generator_parameters": models.parameter_count(generator),
            "discriminator_parameters": models.parameter_count(discriminator),
        }
    )

    def on_signal(name: str, aborting: bool) -> None:
        observer.on_signal(name, aborting, saved)

    with StopRequest(on_signal) as stop:

        def stop_reason() -> str | None:
            """Why training should stop after the step just taken, if it should."""
            if stop.signal_name:
                return STOPPED_BY[stop.signal_name]
            if t.max_steps and step >= t.max_steps:
                return "step limit"
            if t.time_limit and time.perf_counter() - session_start >= t.time_limit * 60:
                return "time limit"
            return None

        reason = stop_reason() or "finished"
        last_grid = None
        try:
            while epoch < t.epochs and reason == "finished":
                for real, real_labels in loader.epoch(epoch, position):  # never empty: position < steps_per_epoch
                    running.add(setup.step(real, torch.randn(t.batch_size, m.z_dim, device=device), real_labels))
                    step += 1
                    position += 1
                    observer.on_step(step)
                    if step % t.log_every == 0:
                        log()
                    if why := stop_reason():
                        reason = why
                        break
                    if position < loader.steps_per_epoch and checkpoint_due():
                        log()
                        save_checkpoint(due=True)
                if position == loader.steps_per_epoch:
                    epoch += 1
                    position = 0
                    log()
                    last_grid = write_samples(setup.sampler, latents, run.sample_path(epoch), grid_labels)
                    save_checkpoint()
                    observer.on_epoch(epoch, last_grid, saved)
                    if evaluator is not None and epoch % config.eval.eval_every == 0:
                        evaluate_now()
                    if reason == "finished":  # a signal or the time limit during the epoch's end: all is saved
                        reason = stop_reason() or reason
                else:  # stopped inside the epoch: a grid of the model where it stopped
                    log()
                    last_grid = write_samples(setup.sampler, latents, run.stop_sample_path(step), grid_labels)
                    save_checkpoint()
            report.write(run, last_grid)
        finally:
            observer.on_end({"reason": reason, "step": step})
    return {"reason": reason, "step": step, "epoch": epoch, "checkpoint": str(saved) if saved else None,
            "samples": str(last_grid) if last_grid else None,
            "seconds": round(time.perf_counter() - session_start, 2)}


def write_samples(generator: torch.nn.Module, latents: torch.Tensor, path: Path,
                  labels: torch.Tensor | None = None) -> Path:
    with models.evaluating(generator):
        pictures = imaging.to_uint8(generator(latents, labels), generator.output_range)
    imaging.save_png(imaging.grid(pictures), path)
    return path
