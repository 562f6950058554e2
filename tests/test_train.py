import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import config as cfg
from facegan import configure
from facegan.errors import FaceganError
from facegan import checkpoint
from facegan.train.run import RunDir, RunPlan, plan
from facegan.train.trainer import Observer, train
from tests.conftest import tiny_config, tiny_plan


def final_state(run_dir):
    return checkpoint.load(RunDir(run_dir).latest_checkpoint())


def assert_same_training_state(a, b):
    for key in ("generator", "discriminator"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    for key in ("g_optimizer", "d_optimizer"):
        for slot, state in a[key]["state"].items():
            for name, value in state.items():
                assert torch.equal(value, b[key]["state"][slot][name]), f"{key}[{slot}].{name} differs"
    assert (a["step"], a["epoch"], a["position"]) == (b["step"], b["epoch"], b["position"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


# The thesis step (dropout, no batch norm) and the alternating step (batch norm).
@pytest.mark.parametrize("preset", ["thesis128", "dcgan64"])
def test_resume_is_exact_two_plus_two_epochs_equal_four(tmp_path, preset):
    train(tiny_plan(tmp_path / "straight", preset, epochs=4, mirror=True))
    train(tiny_plan(tmp_path / "resumed", preset, epochs=2, mirror=True))
    resumed = plan(tmp_path / "resumed", overrides={"epochs": 4})
    assert resumed.resume_from.name == "step-00000008.pt"
    train(resumed)
    # bitwise: the same operations in the same order on the same CPU
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "resumed"))
    rows = RunDir(tmp_path / "resumed").read_metrics()
    assert [r["step"] for r in rows] == [2, 4, 6, 8, 10, 12, 14, 16]


class SignalAt(Observer):
    """Sends this process ``signals`` while step ``step`` runs: from inside D's forward pass,
    between D's update and G's (the thesis step runs D twice per step), as a real signal would."""

    def __init__(self, step, setup_hook, *signals):
        self.step, self.signals, self.setup_hook = step, list(signals), setup_hook
        self.notes = []

    def on_step(self, step):
        if step == self.step - 1:
            self.setup_hook(self)

    def on_note(self, message):
        self.notes.append(message)


def signal_inside_the_next_step(monkeypatch):
    """Patch the trainer's step so that, once armed, the next call sends its signals midway."""
    from facegan.train import generation

    armed = []
    original = generation.GeneratorTraining.step

    def step(self, real, z, labels=None):
        if armed:
            observer = armed.pop()
            def send(*_):
                while observer.signals:  # at D's first forward pass only
                    os.kill(os.getpid(), observer.signals.pop(0))

            handle = self.discriminator.register_forward_hook(send)
            try:
                return original(self, real, z, labels)
            finally:
                handle.remove()
        return original(self, real, z, labels)

    monkeypatch.setattr(generation.GeneratorTraining, "step", step)
    return armed.append


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_step_stops_after_it_with_whole_steps_and_resumes_exactly(tmp_path, monkeypatch, signum):
    train(tiny_plan(tmp_path / "straight", epochs=3))
    before = signal.getsignal(signum)  # Python's default, or SIG_IGN when started in the background by a shell
    arm = signal_inside_the_next_step(monkeypatch)
    summary = train(tiny_plan(tmp_path / "cut", epochs=3), SignalAt(6, arm, signum))  # 4 steps an epoch
    assert summary["reason"] == {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}[signum]
    state = final_state(tmp_path / "cut")
    assert (state["step"], state["epoch"], state["position"]) == (6, 1, 2)
    assert signal.getsignal(signum) is not None and signal.getsignal(signum) == before  # handlers put back
    train(plan(tmp_path / "cut", resume=True))
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


def test_a_second_signal_aborts_at_once_keeping_the_last_checkpoint(tmp_path, monkeypatch):
    arm = signal_inside_the_next_step(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_plan(tmp_path / "cut", epochs=3), SignalAt(6, arm, signal.SIGINT, signal.SIGINT))
    state = final_state(tmp_path / "cut")
    assert (state["step"], state["epoch"], state["position"]) == (4, 1, 0)  # the epoch's; step 6 never finished
    assert not list((tmp_path / "cut" / "checkpoints").glob(".*partial"))


def test_a_run_directory_holds_config_samples_metrics_and_pictures(run_dir):
    summary = train(tiny_plan(run_dir, epochs=3, keep_checkpoints=2))
    run = RunDir(run_dir)
    assert summary["reason"] == "finished" and summary["step"] == 12
    assert configure.file(run.config_path) == tiny_config(epochs=3, keep_checkpoints=2)
    assert [p.name for p in run.sample_paths()] == ["epoch-0001.png", "epoch-0002.png", "epoch-0003.png"]
    grid = Image.open(run.sample_paths()[0])
    assert grid.size == (2 + 2 * 18, 2 + 2 * 18)  # 4 samples of 16 px, 2 px apart
    assert [p.name for p in checkpoint.listing(run.checkpoints)] == ["step-00000008.pt", "step-00000012.pt"]
    rows = [json.loads(line) for line in run.metrics_path.read_text().splitlines()]
    assert len(rows) == 6
    assert {"step", "epoch", "loss_g", "loss_d", "d_real", "d_fake", "images_per_s", "elapsed_s"} <= rows[0].keys()
    assert all(0 <= r["d_real"] <= 1 and 0 <= r["d_fake"] <= 1 and r["images_per_s"] > 0 for r in rows)
    assert Image.open(run.losses_plot).size == (960, 660)
    gif = Image.open(run.progress_gif)
    assert gif.n_frames == 3


def test_sample_grids_use_the_same_latents_every_epoch(run_dir):
    """With learning rates near zero the grid barely changes between epochs."""
    train(tiny_plan(run_dir, epochs=2, g_lr=1e-12, d_lr=1e-12, step="thesis", family="thesis", init="glorot_uniform"))
    a, b = (torch.from_numpy(np.array(Image.open(p))).float() for p in RunDir(run_dir).sample_paths())
    assert (a - b).abs().max() <= 1


def test_resuming_with_a_different_model_names_the_fields(run_dir):
    train(tiny_plan(run_dir, epochs=1))
    with pytest.raises(FaceganError, match=r"different model \(resolution: 16 != 32; g_width: 8 != 16\)"):
        plan(run_dir, overrides={"resolution": 32, "g_width": 16})
    with pytest.raises(FaceganError, match="different model"):
        plan(run_dir, preset="thesis128")


def test_a_checkpoint_of_another_model_is_refused_on_resume(run_dir):
    train(tiny_plan(run_dir, epochs=1))
    run = RunDir(run_dir)
    mismatched = RunPlan(tiny_config(epochs=2, g_width=4), run, run.latest_checkpoint())
    with pytest.raises(FaceganError, match="is of a different model.*g_width: 8 != 4"):
        train(mismatched)


@pytest.mark.parametrize("damage", ["empty", "other model", "missing"])
def test_resume_trusts_the_checkpoint_not_config_toml(run_dir, damage):
    """config.toml is a copy for people: emptied by a kill, edited or deleted, the run
    resumes with the settings saved in its checkpoint, says so, and rewrites it."""
    train(tiny_plan(run_dir, epochs=1, batch_size=8, g_lr=3e-4))
    run = RunDir(run_dir)
    if damage == "empty":
        run.config_path.write_text("")
    elif damage == "other model":
        cfg.save_file(tiny_config(epochs=2, g_width=4), run.config_path)
    else:
        run.config_path.unlink()
    resumed = plan(run_dir, overrides={"epochs": 2})
    assert resumed.config == tiny_config(epochs=2, batch_size=8, g_lr=3e-4)
    assert len(resumed.notes) == 1 and "settings saved in step-00000008.pt" in resumed.notes[0]
    train(resumed)
    assert configure.file(run.config_path) == resumed.config


def test_resume_without_checkpoint_is_refused(run_dir):
    with pytest.raises(FaceganError, match="nothing to resume"):
        plan(run_dir, resume=True)


def test_time_limit_stops_at_an_epoch_end_with_a_checkpoint(run_dir):
    summary = train(tiny_plan(run_dir, epochs=1000, time_limit=0.001))
    assert summary["reason"] == "time limit"
    assert summary["epoch"] < 1000
    assert final_state(run_dir)["epoch"] == summary["epoch"]


def test_data_smaller_than_a_batch_is_refused(run_dir):
    with pytest.raises(FaceganError, match="fewer than one batch"):
        train(tiny_plan(run_dir, synthetic_count=8, batch_size=16))


def test_step_limit_stops_mid_epoch_and_the_run_resumes_exactly(tmp_path):
    train(tiny_plan(tmp_path / "straight", epochs=3))
    summary = train(tiny_plan(tmp_path / "cut", epochs=3, max_steps=6))
    assert (summary["reason"], summary["step"]) == ("step limit", 6)
    assert (final_state(tmp_path / "cut")["epoch"], final_state(tmp_path / "cut")["position"]) == (1, 2)
    train(plan(tmp_path / "cut", overrides={"max_steps": 0}))
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


class Deadline:
    """Fail (instead of hanging) when the body runs longer than ``seconds``."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __enter__(self):
        def expired(*_):
            raise TimeoutError(f"still running after {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, expired)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


@pytest.mark.parametrize("change", [{"batch_size": 32}, {"synthetic_count": 32}])
def test_resuming_into_a_smaller_epoch_moves_on_instead_of_looping(run_dir, change):
    """Stopped 3 batches into a 4-batch epoch, resumed where an epoch has fewer batches: the
    cut epoch counts as done (with a note) and training goes on to its step limit."""
    train(tiny_plan(run_dir, epochs=100, max_steps=3))
    observer = SignalAt(0, None)
    with Deadline(60):
        summary = train(plan(run_dir, overrides={"max_steps": 6, **change}), observer)
    assert (summary["reason"], summary["step"]) == ("step limit", 6)
    assert any("counts as done" in note for note in observer.notes)
    assert final_state(run_dir)["epoch"] >= 2


def test_a_run_being_trained_is_locked_and_a_dead_holders_lock_is_taken_over(run_dir):
    run = RunDir(run_dir)
    run.create()
    with run.lock():
        with pytest.raises(FaceganError, match=rf"being trained by another facegan process \(pid {os.getpid()} "):
            train(tiny_plan(run_dir, epochs=1))
    (run.root / ".lock").write_text("pid 999999 on elsewhere since 2026-01-01 00:00:00\n")  # left by a kill -9
    observer = SignalAt(0, None)
    train(tiny_plan(run_dir, epochs=1), observer)
    assert observer.notes == [f"took over the lock of {run.root} left by pid 999999 on elsewhere since "
                              "2026-01-01 00:00:00, which is no longer running"]
    assert (run.root / ".lock").read_text() == ""  # released in order


def test_a_restart_before_the_first_checkpoint_logs_each_row_once(run_dir):
    run = RunDir(run_dir)
    run.create()
    run.metrics_path.write_text('{"step": 2, "loss_d": 9}\n{"step": 4, "loss_d": 9}\n{"step": 6, "lo')  # killed start
    train(tiny_plan(run_dir, epochs=1))
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [2, 4] and all(r["loss_d"] != 9 for r in rows)
    assert len(run.metrics_path.read_text().splitlines()) == 2


def test_a_stop_inside_an_epoch_names_its_grid_by_step(run_dir):
    train(tiny_plan(run_dir, epochs=3, max_steps=6))
    run = RunDir(run_dir)
    assert sorted(p.name for p in run.samples.iterdir()) == ["epoch-0001.png", "step-00000006.png"]
    train(plan(run_dir, overrides={"max_steps": 0}))
    assert sorted(p.name for p in run.samples.iterdir()) == [
        "epoch-0001.png", "epoch-0002.png", "epoch-0003.png", "step-00000006.png"]
    assert Image.open(run.progress_gif).n_frames == 3  # epochs only


def test_a_start_clears_temporary_files_a_kill_left(run_dir):
    train(tiny_plan(run_dir, epochs=1))
    run = RunDir(run_dir)
    left = [run.samples / ".epoch-0002.png.999.partial", run.root / ".config.toml.999.partial",
            run.checkpoints / ".step-00000007.pt.999.partial"]
    for path in left:
        path.write_bytes(b"half")
    train(plan(run_dir, overrides={"epochs": 2}))
    assert not any(path.exists() for path in left)


def test_a_failed_start_leaves_no_run_directory(tmp_path):
    with pytest.raises(FaceganError, match="fewer than one batch"):
        train(tiny_plan(tmp_path / "new", synthetic_count=8, batch_size=16))
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made is left alone
    with pytest.raises(FaceganError):
        train(tiny_plan(tmp_path / "mine", synthetic_count=8, batch_size=16))
    assert (tmp_path / "mine").is_dir()


def test_checkpoints_every_n_steps_keep_only_the_newest_between_epochs(tmp_path):
    """checkpoint_every saves inside epochs (atomically, like every checkpoint); each such
    checkpoint lasts until the next one, while epoch ends keep theirs."""
    train(tiny_plan(tmp_path / "straight", epochs=2, synthetic_count=96))  # 6 steps an epoch
    run = RunDir(tmp_path / "cut")
    summary = train(tiny_plan(run.root, epochs=2, synthetic_count=96, checkpoint_every=4, max_steps=9))
    assert summary["step"] == 9
    assert [p.name for p in checkpoint.listing(run.checkpoints)] == ["step-00000006.pt", "step-00000009.pt"]
    train(tiny_plan(tmp_path / "every", epochs=2, synthetic_count=96, checkpoint_every=4))
    assert [p.name for p in checkpoint.listing(RunDir(tmp_path / "every").checkpoints)] == [
        "step-00000006.pt", "step-00000012.pt"]  # 4 and 8 went when the next was saved
    train(plan(run.root, overrides={"max_steps": 0}))
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(run.root))


def test_the_progress_animation_samples_long_runs_evenly():
    from facegan.train.report import evenly

    assert evenly([1, 2, 3], 60) == [1, 2, 3]
    picked = evenly(list(range(1000)), 60)
    assert len(picked) == 60 and picked[0] == 0 and picked[-1] == 999 and picked == sorted(set(picked))


def test_ctrl_c_while_a_checkpoint_is_written_finishes_it_then_stops(tmp_path, monkeypatch):
    """The signal lands inside the checkpoint write at the end of epoch 1: the file is
    completed (no traceback, nothing torn), and training stops there."""
    from facegan.train import trainer

    original = checkpoint.save

    def save_with_a_signal_inside(payload, path):
        if payload["step"] == 4:
            os.kill(os.getpid(), signal.SIGINT)
        original(payload, path)

    monkeypatch.setattr(trainer.checkpoint, "save", save_with_a_signal_inside)
    summary = train(tiny_plan(tmp_path / "cut", epochs=3))
    assert (summary["reason"], summary["step"]) == ("interrupted", 4)
    assert [p.name for p in checkpoint.listing(RunDir(tmp_path / "cut").checkpoints)] == ["step-00000004.pt"]
    monkeypatch.undo()
    train(tiny_plan(tmp_path / "straight", epochs=3))
    train(plan(tmp_path / "cut", resume=True))
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))
