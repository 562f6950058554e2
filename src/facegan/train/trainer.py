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

import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facegan import checkpoint, configure, models, sample
from facegan import config as cfg
from facegan.conditions import Conditions
from facegan.data import load_images
from facegan.devices import resolve_device
from facegan.errors import FaceganError
from facegan.models import conditioning
from facegan.train import distributed, report
from facegan.train.distributed import World
from facegan.train.kinds import KINDS, Training
from facegan.train.run import RunPlan
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
        differences = cfg.model_differences(configure.from_dict(state.config, str(plan.resume_from)).model, m)
        if differences:
            raise FaceganError(f"checkpoint {plan.resume_from} is of a different model ({'; '.join(differences)})")
        if state.world_size != world.size:
            raise FaceganError(f"checkpoint {plan.resume_from} was trained by {state.world_size} process(es); resume "
                               f"it with as many (torchrun --nproc-per-node {state.world_size}), not {world.size}: "
                               "each process's share of every batch would change")
    models.check_fits(m, t.attribute_heads, t.ema_kimg > 0, device)
    family = models.family_of(m)
    names = family.data_attributes(m)  # the labels it trains on: a conditional model's, a translator's domains
    if images is None:
        if not world.main:  # rank 0 prepares the cache, if it must, before the others read it
            distributed.meet(world)
        images, labels, data_line = load_images(config.data, m.resolution, observer.on_prepare, names)
        if world.main:
            distributed.meet(world)
    else:
        data_line = f"{len(images):,} given images"
    if names and (labels is None or labels.shape != (len(images), len(names))):
        raise FaceganError(f"a model trained on the labels {', '.join(names)} needs one per image and attribute")
    if len(images) < t.batch_size:
        raise FaceganError(f"the data set has {len(images)} images, fewer than one batch of {t.batch_size}")
    setup = KINDS[family.kind].set_up(config, device, images, labels, world)
    for note in setup.notes:
        observer.on_note(note)
    if plan.resume_from is None and t.start_from:
        observer.on_note(start_from(setup, t.start_from, family.kind))
    if world.main:
        cfg.save_file(config, plan.run.config_path)
    evaluator = (make_evaluator(config.eval, images, plan.run.root, t.seed, device, setup.conditions)
                 if config.eval.eval_every and world.main else None)
    session = Session(plan, observer, setup, evaluator, state)
    observer.on_start({
        "run": str(plan.run.root), "device": str(device) + (f" x {world.size} processes" if world.several else ""),
        "speed": setup.fast.describe(), "images": len(images),
        "data": data_line, "steps_per_epoch": setup.loader.steps_per_epoch, "start_step": session.step,
        "total_steps": min(t.epochs * setup.loader.steps_per_epoch, t.max_steps or float("inf")),
        "time_limit_s": t.time_limit * 60, "resumed_from": str(plan.resume_from) if plan.resume_from else None,
        "family": family.name, "kind": family.kind,
    })
    return session.run()


def start_from(setup: Training, source: str, kind: str) -> str:
    """Give a new run's generator the weights of ``source``'s (a checkpoint, run directory,
    generator file or shipped model of the same kind and architecture): a second stage starting from the
    first. Its discriminator and optimisers stay as set up. Says what it did."""
    try:
        path = sample.find_named(source, kind)
    except FaceganError as error:
        raise FaceganError(f"train.start_from: {error}") from None
    loaded, _, _ = sample.load_generator(path, torch.device("cpu"), kind)
    weights, how = loaded.state_dict(), ""
    if getattr(setup.generator, "conditions", 0) and not getattr(loaded, "conditions", 0):
        try:  # an unconditional generator made conditional: it draws as before until the labels' terms learn
            weights = conditioning.from_unconditional(setup.generator, weights)
        except (KeyError, ValueError) as error:
            raise FaceganError(f"train.start_from: {path}'s network is not this run's without its labels ({error}); "
                               "start from a run of the same family and size") from None
        how = " made conditional (the labels' terms start at zero)"
    try:
        setup.start_from(weights)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise FaceganError(f"train.start_from: {path}'s network is not this run's ({first[0].strip()}); start from "
                           "a run of the same family and size") from None
    return f"starting from {path}'s {kind}{how}; its discriminator and optimisers start fresh"


class Session:
    """One sitting of a run: from its start (or the checkpoint it resumes) to where it
    stops, with what it writes into the run directory on the way."""

    def __init__(self, plan: RunPlan, observer: Observer, setup: Training, evaluator: Evaluation | None,
                 state: checkpoint.TrainingState | None):
        self.config, self.run_dir, self.observer, self.setup = plan.config, plan.run, observer, setup
        self.device = setup.device
        self.evaluator = evaluator
        self.world = setup.world
        self.main = self.world.main  # only the main process writes the run directory
        self.step = self.epoch = self.position = 0
        self.elapsed = 0.0
        if state is not None:
            self.restore(state)
        if self.main:  # rows past the checkpoint (or, new, from a failed start) come again
            self.run_dir.truncate_metrics(self.step)
        self.best_fid = (min((r["fid"] for r in self.run_dir.read_metrics() if "fid" in r), default=float("inf"))
                         if self.main else float("inf"))
        self.started = self.last_saved_at = time.perf_counter()
        self.evaluating_s = 0.0  # seconds spent in evaluations since this start, not counted by the time limit
        self.saved = plan.resume_from  # the newest checkpoint
        self.rolling: Path | None = None  # the newest checkpoint saved only because one was due
        self.running = _Running()
        self.in_step = False  # inside a step: the state is not whole until it ends
        self.stop = StopRequest(lambda name, aborting: self.observer.on_signal(name, aborting, self.saved),
                                grace=SIGNAL_GRACE_S if self.world.several else 0.0)

    def restore(self, state: checkpoint.TrainingState) -> None:
        s = self.setup
        self.step, self.epoch, self.position, self.elapsed = state.step, state.epoch, state.position, state.elapsed
        s.restore(state, self.step)
        torch.set_rng_state(state.rng["torch"].cpu())
        if self.device.type == "cuda" and "cuda" in state.rng:
            torch.cuda.set_rng_state_all([r.cpu() for r in state.rng["cuda"]])
        if self.position >= s.loader.steps_per_epoch:  # a smaller epoch now (a bigger batch, fewer images)
            self.observer.on_note(f"the checkpoint stopped {self.position:,} batches into epoch {self.epoch + 1}, "
                                  f"which now has {s.loader.steps_per_epoch:,}: epoch {self.epoch + 1} counts as done")
            self.epoch, self.position = self.epoch + 1, 0

    def write_state(self, path: Path) -> Path:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint.TrainingState(
            config=self.config.to_dict(), **self.setup.state(), step=self.step, epoch=self.epoch,
            position=self.position, rng=rng, elapsed=self.elapsed + time.perf_counter() - self.started,
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
        return distributed.agree(self.world, [due], self.device)[0]  # every rank saves (or not) together

    def log(self) -> None:
        if self.running.steps == 0:
            return
        record = {"step": self.step,
                  "epoch": round(self.epoch + self.position / self.setup.loader.steps_per_epoch, 4)}
        record.update(self.running.flush(self.config.train.batch_size))
        record.update(self.setup.log_figures())
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
        signalled, timed_out = distributed.agree(self.world, [signalled, timed_out], self.device)
        if signalled:
            return STOPPED_BY.get(self.stop.signal_name or "", "interrupted")
        if t.max_steps and self.step >= t.max_steps:
            return "step limit"
        if timed_out:
            return "time limit"
        return None

    def grid(self, path: Path) -> Path:
        return self.setup.grid(path) if self.main else path

    def take_step(self, batch: Any) -> None:
        self.in_step = True  # a peer lost now leaves the step half taken: nothing whole to save
        self.running.add(self.setup.train_step(batch))
        self.step += 1
        self.position += 1
        self.in_step = False

    def peer_lost(self, why: str) -> FaceganError:
        """What to do when another rank of the run went away: rank 0 saves the state if it
        is whole (between steps), and every rank stops with one line."""
        if self.main and not self.in_step and self.saved != self.run_dir.checkpoints / checkpoint.name_for(self.step):
            if self.position == self.setup.loader.steps_per_epoch:  # the epoch's last step: the epoch is done
                self.epoch, self.position = self.epoch + 1, 0
            self.log()
            self.save_checkpoint()
            kept = f"saved {self.saved} at step {self.step}"
        else:
            kept = (f"the last checkpoint is {self.saved}" if self.saved else "nothing was saved") + \
                   " (the step in progress is lost)"
        return FaceganError(f"{why}; stopped: {kept}; run the same command to resume")

    def peer_stalled(self, rank: int, seconds: float) -> None:
        """The heartbeat's verdict, on its own thread, while this rank waits on the stalled
        one inside a collective it cannot leave: say so, save if whole, and end the process."""
        import os

        try:
            message = str(self.peer_lost(f"process {rank} of the run has not answered for {seconds:.0f} s"))
        except BaseException as e:  # noqa: BLE001 - the process ends either way; say why
            message = f"process {rank} of the run stalled, and saving failed: {e}"
        self.observer.on_note(message)
        os._exit(1)

    def run(self) -> dict[str, Any]:
        """Train until the last epoch, a limit or a signal; returns a summary."""
        t, loader = self.config.train, self.setup.loader
        heartbeat = distributed.Heartbeat(self.world, self.peer_stalled)
        try:
            return self._run(t, loader)
        except RuntimeError as e:
            if not (self.world.several and distributed.lost_peer(e)):
                raise
            first = re.sub(r"^\[[^\]]*\]\s*", "", (str(e).strip().splitlines() or [type(e).__name__])[0])
            raise self.peer_lost(f"another process of the run went away ({first[:160]})") from None
        finally:
            heartbeat.stop()

    def _run(self, t, loader) -> dict[str, Any]:
        with self.stop:
            reason = self.stop_reason() or "finished"
            last_grid = None
            try:
                while self.epoch < t.epochs and reason == "finished":
                    for batch in loader.epoch(self.epoch, self.position):  # never empty
                        self.take_step(batch)
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
