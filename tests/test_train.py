import json

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import config as cfg
from facegan.errors import FaceganError
from facegan.train import checkpoint
from facegan.train.run import RunDir, plan
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


class StopAt(Observer):
    def __init__(self, step):
        self.step = step

    def on_step(self, step):
        if step == self.step:
            raise KeyboardInterrupt


def test_interrupt_mid_epoch_saves_a_checkpoint_and_resumes_exactly(tmp_path):
    train(tiny_plan(tmp_path / "straight", epochs=3))
    with pytest.raises(KeyboardInterrupt):
        train(tiny_plan(tmp_path / "cut", epochs=3), StopAt(5))  # 4 steps an epoch: inside epoch 2
    state = final_state(tmp_path / "cut")
    assert (state["step"], state["epoch"], state["position"]) == (5, 1, 1)
    train(plan(tmp_path / "cut", resume=True))
    assert_same_training_state(final_state(tmp_path / "straight"), final_state(tmp_path / "cut"))


def test_a_run_directory_holds_config_samples_metrics_and_pictures(run_dir):
    summary = train(tiny_plan(run_dir, epochs=3, keep_checkpoints=2))
    run = RunDir(run_dir)
    assert summary["reason"] == "finished" and summary["step"] == 12
    assert cfg.load_file(run.config_path) == tiny_config(epochs=3, keep_checkpoints=2)
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
    cfg.save_file(tiny_config(epochs=2, g_width=4), run.config_path)  # config edited by hand
    with pytest.raises(FaceganError, match="is of a different model.*g_width: 8 != 4"):
        train(plan(run_dir))


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
