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
from facegan.train import augment, distributed, report, speed
from facegan.train.distributed import ALONE, World
from facegan.train.run import RunPlan
from facegan.train.ema import MovingAverage
from facegan.train.steps import STEPS, Objective
from facegan.train.stopping import StopRequest

STOPPED_BY = {"SIGINT": "interrupted", "SIGTERM": "terminated"}  # the summary's reason for each signal
SIGNAL_GRACE_S = 5.0  # with several processes, a second signal this soon is the first one again (see stopping)

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
    world: World = ALONE  # the processes training together, and this one's place among them
    steps_taken: int = 0  # set on resume: lazy R1 and the average's ramp-up count steps

    def latents(self) -> torch.Tensor:
        """This process's latents for the next step: the whole batch's, drawn alike on
        every rank (so the shared random state advances alike), then its slice of them."""
        t, world = self.config.train, self.world
        z = torch.randn(t.batch_size, self.config.model.z_dim, device=self.device)
        share = t.batch_size // world.size
        return z[world.rank * share : (world.rank + 1) * share] if world.several else z

    def step(self, real: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One training step on a real batch (and its labels, for a conditional model)."""
        with distributed.own_randomness(self.world, self.config.train.seed, self.steps_taken, self.device):
            return self._step(real, z, labels)

    def _step(self, real: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
        self.steps_taken += 1
        batch = self.config.train.batch_size
        models.grow([self.generator, self.discriminator] + ([self.average.module] if self.average is not None else []),
                    (self.steps_taken - 1) * batch)
        if self.fast.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        figures = STEPS[self.config.train.step](self.g_train, self.d_train, self.g_optimizer, self.d_optimizer,
                                                real, z, self.objective, self.steps_taken,
                                                lambda: self.fast.autocast(self.device), labels)
        if self.average is not None:
            self.average.update(self.generator, batch, self.steps_taken * batch)
        return figures

    @property
    def sampler(self) -> torch.nn.Module:
        """The generator that samples, evaluations and checkpoints' users see: the average if kept."""
        return self.average.module if self.average is not None else self.generator


def set_up(config: cfg.Config, device: torch.device, images: np.ndarray,
           labels: np.ndarray | None = None, world: World = ALONE) -> TrainingSetup:
    """Resolve the [speed] settings, then build (seeded) networks, optimisers and the loader
    (of ``images``, and of their ``labels`` for a conditional model); with several
    processes, this one's share of each batch and optimisers that average gradients."""
    m, t = config.model, config.train
    distributed.check_batch(world, t.batch_size)
    fast = speed.resolve(config.speed, device, images.nbytes, model=m)
    speed.apply_globals(fast)
    torch.manual_seed(t.seed)
    generator, discriminator = (distributed.share_batch_norm(network, world, device).to(device)
                                for network in models.build(m, attribute_head=t.attribute_loss > 0))
    for network in (generator, discriminator):
        distributed.same_weights(network, world)
    optimizers = (speed.adam(generator.parameters(), t.g_lr, (t.beta1, t.beta2), t.adam_eps, fast),
                  speed.adam(discriminator.parameters(), t.d_lr, (t.beta1, t.beta2), t.adam_eps, fast))
    for optimizer in optimizers:
        distributed.average_gradients_before_steps(optimizer, world)
    return TrainingSetup(
        config, device, fast, generator, discriminator, *optimizers,
        speed.prepare_network(generator, fast), speed.prepare_network(discriminator, fast),
        BatchLoader(images, t.batch_size, t.seed, device, generator.output_range, config.data.mirror,
                    channels_last=fast.channels_last, on_device=fast.data_on_device, labels=labels,
                    shard=(world.rank, world.size)),
        Objective(t.loss, t.r1_gamma, t.r1_every, augment.policies(t.augment), generator.output_range,
                  t.attribute_loss, t.pl_weight),
        MovingAverage(generator, t.ema_kimg) if t.ema_kimg > 0 else None,
        world,
    )


def train(plan: RunPlan, observer: Observer | None = None, images: np.ndarray | None = None,
          labels: np.ndarray | None = None, evaluator: EvaluatorFactory | None = None) -> dict[str, Any]:
    """Train (or resume) the run described by ``plan``; returns a summary. ``images`` (and,
    for a conditional model, their ``labels``) replace the configured data set;
    ``evaluator`` makes the evaluation run every eval.eval_every epochs (see above).

    The run directory is locked while training. A run that fails before its first
    checkpoint removes the directory it made, so a failed start leaves nothing behind.
    Started by torchrun, the processes train the run together (facegan.train.distributed)
    and only rank 0 touches the run directory.
    """
    observer = observer or Observer()
    world = World.from_environment()
    device = distributed.device_for(world, resolve_device(plan.config.train.device))
    distributed.join(world, device)
    try:
        if not world.main:
            return _train(plan, observer, images, labels, evaluator, world, device)
        run = plan.run
        created = not run.root.exists()
        run.create()
        with run.lock() as note:
            if note:
                observer.on_note(note)
            run.clear_temporaries()
            try:
                return _train(plan, observer, images, labels, evaluator, world, device)
            except BaseException:
                if created and run.latest_checkpoint() is None:
                    shutil.rmtree(run.root, ignore_errors=True)
                raise
    finally:
        distributed.leave(world)


def _train(plan: RunPlan, observer: Observer, images: np.ndarray | None, labels: np.ndarray | None,
           make_evaluator: EvaluatorFactory | None, world: World, device: torch.device) -> dict[str, Any]:
    """Check everything that can be checked before anything slow, load the data, build
    the networks, then hand over to a Session."""
    config = plan.config
    m, t = config.model, config.train
    if config.eval.eval_every and make_evaluator is None:
        raise FaceganError("eval.eval_every needs an evaluator (facegan train gives it one; a library caller passes "
                           "evaluator=facegan.metrics.evaluate.DuringTraining)")
    distributed.check_batch(world, t.batch_size)
    for note in plan.notes:
        observer.on_note(note)
    state = plan.resume_state
    if plan.resume_from is not None:
        state = state or checkpoint.TrainingState.load(plan.resume_from)
        differences = cfg.model_differences(cfg.from_dict(state.config, str(plan.resume_from)).model, m)
        if differences:
            raise FaceganError(f"checkpoint {plan.resume_from} is of a different model ({'; '.join(differences)})")
        if state.world_size != world.size:
            raise FaceganError(f"checkpoint {plan.resume_from} was trained by {state.world_size} process(es); resume "
                               f"it with as many (torchrun --nproc-per-node {state.world_size}), not {world.size}: "
                               "each process's share of every batch would change")
    models.check_fits(m, t.attribute_loss > 0, t.ema_kimg > 0, device)
    names = attribute_names(m.attributes)
    if images is None:
        if not world.main:  # rank 0 prepares the cache, if it must, before the others read it
            distributed.meet(world)
        images, labels, data_line = load_images(config.data, m.resolution, observer.on_prepare, names)
        if world.main:
            distributed.meet(world)
    else:
        data_line = f"{len(images):,} given images"
    if names and (labels is None or labels.shape != (len(images), len(names))):
        raise FaceganError(f"a model conditioned on {', '.join(names)} needs one label per image and attribute")
    conditions = Conditions.of(names, labels) if names else None
    if len(images) < t.batch_size:
        raise FaceganError(f"the data set has {len(images)} images, fewer than one batch of {t.batch_size}")
    setup = set_up(config, device, images, labels, world)
    if world.main:
        cfg.save_file(config, plan.run.config_path)
    evaluator = (make_evaluator(config.eval, images, plan.run.root, t.seed, device, conditions)
                 if config.eval.eval_every and world.main else None)
    session = Session(plan, observer, setup, conditions, evaluator, state)
    observer.on_start({
        "run": str(plan.run.root), "device": str(device) + (f" x {world.size} processes" if world.several else ""),
        "speed": setup.fast.describe(), "images": len(images),
        "data": data_line, "steps_per_epoch": setup.loader.steps_per_epoch, "start_step": session.step,
        "total_steps": min(t.epochs * setup.loader.steps_per_epoch, t.max_steps or float("inf")),
        "time_limit_s": t.time_limit * 60, "resumed_from": str(plan.resume_from) if plan.resume_from else None,
        "generator_parameters": models.parameter_count(setup.generator),
        "discriminator_parameters": models.parameter_count(setup.discriminator),
    })
    return session.run()


class Session:
    """One sitting of a run: from its start (or the checkpoint it resumes) to where it
    stops, with what it writes into the run directory on the way."""

    def __init__(self, plan: RunPlan, observer: Observer, setup: TrainingSetup, conditions: Conditions | None,
                 evaluator: Evaluation | None, state: checkpoint.TrainingState | None):
        self.config, self.run_dir, self.observer, self.setup = plan.config, plan.run, observer, setup
        self.conditions, self.evaluator = conditions, evaluator
        self.world = setup.world
        self.main = self.world.main  # only the main process writes the run directory
        self.step = self.epoch = self.position = 0
        self.elapsed = 0.0
        if state is not None:
            self.restore(state)
        t = self.config.train
        if self.main:  # rows past the checkpoint (or, new, from a failed start) come again
            self.run_dir.truncate_metrics(self.step)
        self.latents = sample.latents(t.sample_count, self.config.model.z_dim, t.seed).to(setup.device)
        self.grid_labels = (None if conditions is None
                            else torch.from_numpy(conditions.sample(t.sample_count, t.seed)).to(setup.device))
        self.best_fid = (min((r["fid"] for r in self.run_dir.read_metrics() if "fid" in r), default=float("inf"))
                         if self.main else float("inf"))
        self.started = self.last_saved_at = time.perf_counter()
        self.evaluating_s = 0.0  # seconds spent in evaluations since this start, not counted by the time limit
        self.saved = plan.resume_from  # the newest checkpoint
        self.rolling: Path | None = None  # the newest checkpoint saved only because one was due
        self.running = _Running()
        self.stop = StopRequest(lambda name, aborting: self.observer.on_signal(name, aborting, self.saved),
                                grace=SIGNAL_GRACE_S if self.world.several else 0.0)

    def restore(self, state: checkpoint.TrainingState) -> None:
        s = self.setup
        s.generator.load_state_dict(state.generator)
        s.discriminator.load_state_dict(state.discriminator)
        s.g_optimizer.load_state_dict(state.g_optimizer)
        s.d_optimizer.load_state_dict(state.d_optimizer)
        self.step, self.epoch, self.position, self.elapsed = state.step, state.epoch, state.position, state.elapsed
        s.steps_taken = self.step
        if s.average is not None:  # a run that starts averaging on resume starts from its generator
            s.average.module.load_state_dict(state.sampling_generator)
        torch.set_rng_state(state.rng["torch"].cpu())
        if s.device.type == "cuda" and "cuda" in state.rng:
            torch.cuda.set_rng_state_all([r.cpu() for r in state.rng["cuda"]])
        if self.position >= s.loader.steps_per_epoch:  # a smaller epoch now (a bigger batch, fewer images)
            self.observer.on_note(f"the checkpoint stopped {self.position:,} batches into epoch {self.epoch + 1}, "
                                  f"which now has {s.loader.steps_per_epoch:,}: epoch {self.epoch + 1} counts as done")
            self.epoch, self.position = self.epoch + 1, 0

    def write_state(self, path: Path) -> Path:
        s = self.setup
        rng = {"torch": torch.get_rng_state()}
        if s.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint.TrainingState(
            config=self.config.to_dict(), generator=s.generator.state_dict(),
            discriminator=s.discriminator.state_dict(), g_optimizer=s.g_optimizer.state_dict(),
            d_optimizer=s.d_optimizer.state_dict(), step=self.step, epoch=self.epoch, position=self.position,
            rng=rng, elapsed=self.elapsed + time.perf_counter() - self.started,
            generator_ema=s.average.module.state_dict() if s.average is not None else None,
            conditions=self.conditions.state() if self.conditions is not None else None,
            world_size=self.world.size,
        ).save(path)
        return path

    def save_checkpoint(self, due: bool = False) -> Path:
        """Save the state after ``step``; one saved only because it was ``due`` is kept
        only until the next checkpoint. Only the main process writes it."""
        path = self.run_dir.checkpoints / checkpoint.name_for(self.step)
        if self.main:
            self.write_state(path)
            if self.rolling is not None and self.rolling != path:
                self.rolling.unlink(missing_ok=True)
            self.rolling = path if due else None
            checkpoint.prune(self.run_dir.checkpoints, self.config.train.keep_checkpoints)
        self.saved, self.last_saved_at = path, time.perf_counter()
        return path

    def checkpoint_due(self) -> bool:
        t = self.config.train
        if t.checkpoint_every and self.step % t.checkpoint_every == 0:
            return True
        due = (self.main and bool(t.checkpoint_minutes)
               and time.perf_counter() - self.last_saved_at >= t.checkpoint_minutes * 60)
        return distributed.agree(self.world, [due], self.setup.device)[0]  # every rank saves (or not) together

    def log(self) -> None:
        if self.running.steps == 0:
            return
        record = {"step": self.step,
                  "epoch": round(self.epoch + self.position / self.setup.loader.steps_per_epoch, 4)}
        record.update(self.running.flush(self.config.train.batch_size))
        record.update(models.growth_figures(self.setup.generator))
        record["elapsed_s"] = round(self.elapsed + time.perf_counter() - self.started, 2)
        if self.main:
            self.run_dir.append_metrics(record)
            self.observer.on_log(record)

    def evaluate(self) -> None:
        started = time.perf_counter()
        figures = self.evaluator(self.setup.sampler, self.observer.on_evaluating)
        seconds = time.perf_counter() - started
        self.evaluating_s += seconds
        record = {"step": self.step, "epoch": self.epoch, "eval_n": self.config.eval.eval_n,
                  **{k: round(v, 5) for k, v in figures.items()}, "eval_seconds": round(seconds, 2)}
        if figures["fid"] < self.best_fid:
            self.best_fid = figures["fid"]
            record["best"] = str(self.write_state(self.run_dir.best_checkpoint))
        alarm = self.config.eval.collapse_alarm
        if figures["diversity"] < alarm:
            record["warning"] = (
                f"possible mode collapse: sample diversity is {figures['diversity']:.2f} of the real data's, below "
                f"eval.collapse_alarm {alarm:.2f}; look at {self.run_dir.sample_path(self.epoch)}")
        self.run_dir.append_metrics(record)
        self.observer.on_eval(record)

    def stop_reason(self) -> str | None:
        """Why training should stop after the step just taken, if it should; with several
        processes, the same answer on every one (a signal to any stops all)."""
        t = self.config.train
        signalled = self.stop.signal_name is not None
        # the main process's clock: only it knows how long its evaluations took (others wait meanwhile)
        timed_out = (self.main and bool(t.time_limit)
                     and time.perf_counter() - self.started - self.evaluating_s >= t.time_limit * 60)
        signalled, timed_out = distributed.agree(self.world, [signalled, timed_out], self.setup.device)
        if signalled:
            return STOPPED_BY.get(self.stop.signal_name or "", "interrupted")
        if t.max_steps and self.step >= t.max_steps:
            return "step limit"
        if timed_out:
            return "time limit"
        return None

    def grid(self, path: Path) -> Path:
        return write_samples(self.setup.sampler, self.latents, path, self.grid_labels) if self.main else path

    def run(self) -> dict[str, Any]:
        """Train until the last epoch, a limit or a signal; returns a summary."""
        t, setup, loader = self.config.train, self.setup, self.setup.loader
        with self.stop:
            reason = self.stop_reason() or "finished"
            last_grid = None
            try:
                while self.epoch < t.epochs and reason == "finished":
                    for real, real_labels in loader.epoch(self.epoch, self.position):  # never empty
                        self.running.add(setup.step(real, setup.latents(), real_labels))
                        self.step += 1
                        self.position += 1
                        self.observer.on_step(self.step)
                        if self.step % t.log_every == 0:
                            self.log()
                        if why := self.stop_reason():
                            reason = why
                            break
                        if self.position < loader.steps_per_epoch and self.checkpoint_due():
                            self.log()
                            self.save_checkpoint(due=True)
                    if self.position == loader.steps_per_epoch:
                        self.epoch, self.position = self.epoch + 1, 0
                        self.log()
                        last_grid = self.grid(self.run_dir.sample_path(self.epoch))
                        self.save_checkpoint()
                        self.observer.on_epoch(self.epoch, last_grid, self.saved)
                        if self.evaluator is not None and self.epoch % self.config.eval.eval_every == 0:
                            self.evaluate()
                        if reason == "finished":  # a signal or the time limit during the epoch's end: all is saved
                            reason = self.stop_reason() or reason
                    else:  # stopped inside the epoch: a grid of the model where it stopped
                        self.log()
                        last_grid = self.grid(self.run_dir.stop_sample_path(self.step))
                        self.save_checkpoint()
                if self.main:
                    report.write(self.run_dir, last_grid)
            finally:
                self.observer.on_end({"reason": reason, "step": self.step})
        return {"reason": reason, "step": self.step, "epoch": self.epoch,
                "checkpoint": str(self.saved) if self.saved else None,
                "samples": str(last_grid) if last_grid else None,
                "seconds": round(time.perf_counter() - self.started, 2)}


def write_samples(generator: torch.nn.Module, latents: torch.Tensor, path: Path,
                  labels: torch.Tensor | None = None) -> Path:
    with models.evaluating(generator):
        pictures = imaging.to_uint8(generator(latents, labels), generator.output_range)
    imaging.save_png(imaging.grid(pictures), path)
    return path
