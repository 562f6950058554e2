"""The command line, run in-process through ``main`` and, where it matters, as a real process."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import sample
from facegan.cli import main
from facegan import checkpoint
from facegan.train.run import RunDir

TINY_FLAGS = ["--preset", "dcgan64", "--resolution", "16", "--g-width", "8", "--d-width", "8",
              "--synthetic-count", "64", "--batch-size", "16", "--log-every", "2", "--sample-count", "4"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, message):
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facegan: error:"), err
    assert message in lines[0]


def test_dry_run_prints_both_networks_with_the_thesis_counts(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "facegan", "train", "--preset", "thesis128", "--dry-run", "--run", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "generator: 14,175,491 trainable parameters" in result.stdout
    assert "discriminator: 2,789,313 trainable parameters" in result.stdout
    assert "ConvTranspose2d(1024, 512" in result.stdout
    assert not (tmp_path / "r").exists()  # nothing trained, nothing written


def test_train_then_generate_grid_and_folder(capsys, tmp_path):
    run = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", "--run", str(run), "--epochs", "2", *TINY_FLAGS)
    assert code == 0, err
    assert "finished at step 8 (epoch 2)" in out
    assert "step 8/8" in err and "epoch 2: samples" in err  # plain progress lines when not a terminal

    code, out, err = run_cli(capsys, "generate", "--run", str(run), "-n", "5", "--seed", "3", "--out", str(tmp_path / "g.png"))
    assert code == 0, err
    assert Image.open(tmp_path / "g.png").size == (2 + 3 * 18, 2 + 2 * 18)  # 5 images in a 3-column grid

    latest = checkpoint.latest(run / "checkpoints")
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert run_cli(capsys, "generate", "--checkpoint", str(latest), "-n", "5", "--seed", seed, "--out", str(tmp_path / name))[0] == 0
    files = sorted((tmp_path / "a").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
    a, b, c = (np.stack([np.asarray(Image.open(tmp_path / d / f.name)) for f in files]) for d in "abc")
    assert a.shape == (5, 16, 16, 3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)

    # a folder is written batch by batch: the same faces as one array of them
    assert run_cli(capsys, "generate", "--checkpoint", str(latest), "-n", "150", "--seed", "3",
                   "--out", str(tmp_path / "many"))[0] == 0
    generator, _, _ = sample.load_generator(latest, torch.device("cpu"))
    whole = sample.generate(generator, 150, 3, torch.device("cpu"))
    written = sorted((tmp_path / "many").iterdir())
    assert len(written) == 150 and np.array_equal(np.stack([np.asarray(Image.open(f)) for f in written]), whole)


def test_running_train_again_resumes_and_can_extend(capsys, tmp_path):
    run = str(tmp_path / "run")
    assert run_cli(capsys, "train", "--run", run, "--epochs", "1", *TINY_FLAGS)[0] == 0
    code, out, err = run_cli(capsys, "train", "--run", run, "--epochs", "2")
    assert code == 0, err
    assert "resuming" in err and "step-00000004.pt" in err
    assert "finished at step 8" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--epochs", "-1"], "train.epochs must be between 0 and 1,000,000, not -1"),
        (["train", "--batch-size", "0"], "train.batch_size must be between 1 and 65,536, not 0"),
        (["train", "--epochs", "ten"], "train.epochs: 'ten' is not a valid int"),
        (["train", "--resume"], "nothing to resume"),
        (["train", "--preset", "thesis128", "--config", "x.toml"], "config x.toml does not exist"),
        (["train", "--config", "missing.toml"], "config missing.toml does not exist"),
        (["generate", "--checkpoint", "missing.pt"], "checkpoint missing.pt does not exist"),
        (["generate", "--run", "empty-run"], "empty-run holds no checkpoint"),
        (["generate", "--checkpoint", "x.pt", "-n", "0"], "-n must be between 1 and 1,000,000, not 0"),
        (["generate", "--checkpoint", "x.pt", "-n", "2000"], "a grid holds at most 1,024 faces; give --out a folder"),
        (["train", "--resolution", "1048576"], "model.resolution must be between 8 and 1,024, not 1,048,576"),
        (["demo", "--minutes", "0"], "--minutes must be positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, message)


def test_unknown_config_field(capsys, tmp_path):
    (tmp_path / "c.toml").write_text("[train]\nepochz = 3\n")
    code, _, err = run_cli(capsys, "train", "--config", str(tmp_path / "c.toml"), "--run", str(tmp_path / "r"))
    assert_one_line_error(code, err, "unknown setting train.epochz")


def test_unwritable_run_directory(capsys, tmp_path):
    (tmp_path / "a-file").write_text("")
    code, _, err = run_cli(capsys, "train", "--run", str(tmp_path / "a-file" / "run"), "--epochs", "1", *TINY_FLAGS)
    assert_one_line_error(code, err, "cannot write to run directory")


def test_truncated_checkpoint_in_generate_and_resume(capsys, tmp_path):
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "--run", str(run), "--epochs", "1", *TINY_FLAGS)[0] == 0
    path = checkpoint.latest(run / "checkpoints")
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = run_cli(capsys, "generate", "--run", str(run))
    assert_one_line_error(code, err, "truncated or corrupt")
    config_before = (run / "config.toml").read_text()
    code, _, err = run_cli(capsys, "train", "--run", str(run), "--epochs", "2")
    assert_one_line_error(code, err, "truncated or corrupt")
    assert (run / "config.toml").read_text() == config_before  # nothing saved is changed or lost
    assert (run / "samples" / "epoch-0001.png").exists() and (run / "metrics.jsonl").exists()


def test_the_same_command_with_a_preset_and_model_flags_resumes(capsys, tmp_path):
    run = str(tmp_path / "run")
    assert run_cli(capsys, "train", "--run", run, "--epochs", "1", *TINY_FLAGS)[0] == 0  # TINY_FLAGS: a preset
    code, _, err = run_cli(capsys, "train", "--run", run, "--epochs", "2", *TINY_FLAGS)
    assert code == 0 and "resuming" in err, err


def test_resume_with_a_different_model_is_refused(capsys, tmp_path):
    run = str(tmp_path / "run")
    assert run_cli(capsys, "train", "--run", run, "--epochs", "1", *TINY_FLAGS)[0] == 0
    code, _, err = run_cli(capsys, "train", "--run", run, "--g-width", "16")
    assert_one_line_error(code, err, "different model (g_width: 8 != 16)")


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path):
    """Kill training while a checkpoint is half written: the last complete one still loads and resumes."""
    run = tmp_path / "run"
    # few, cheap steps and big weights, so most of the time is spent writing checkpoints
    flags = ["--preset", "thesis128", "--resolution", "16", "--g-width", "384", "--d-width", "8",
             "--synthetic-count", "4", "--batch-size", "2", "--log-every", "1", "--sample-count", "1"]
    process = subprocess.Popen([sys.executable, "-m", "facegan", "train", "--run", str(run), "--epochs", "500", *flags],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_mid_write = False
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if checkpoint.listing(run / "checkpoints") and list((run / "checkpoints").glob(".step-*.partial")):
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                killed_mid_write = bool(list((run / "checkpoints").glob(".step-*.partial")))
                break
            time.sleep(0.001)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert killed_mid_write, "never caught a checkpoint being written"
    latest = checkpoint.latest(run / "checkpoints")
    state = checkpoint.load(latest)  # complete and loadable
    epoch = state["epoch"]
    result = subprocess.run([sys.executable, "-m", "facegan", "train", "--run", str(run), "--resume",
                             "--epochs", str(epoch + 1)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"resuming {run} from {latest}" in result.stderr
    assert checkpoint.load(checkpoint.latest(run / "checkpoints"))["epoch"] == epoch + 1
    assert not list((run / "checkpoints").glob(".step-*.partial"))  # the torn file was cleared


def test_demo_command_reports_distances_and_pictures(capsys, tmp_path):
    code, out, err = run_cli(capsys, "demo", "--minutes", "0.05", "--run", str(tmp_path / "demo"))
    assert code == 0, err
    assert "before training" in out and "after" in out
    assert f"progress: {tmp_path / 'demo' / 'progress.gif'}" in out
    assert (tmp_path / "demo" / "progress.gif").exists()


def _ctrl_c_as_usual() -> None:
    """In the child before it starts: SIGINT unblocked and at its default, as from a shell,
    whatever earlier tests left in this process (a child inherits both)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_says_how_to_resume(tmp_path, signum, code, word):
    run = tmp_path / "run"
    # 512 images: 32 steps an epoch, so a parent slow to notice (a busy machine) finds a
    # few epochs done, not hundreds of grids for the interrupted run's progress.gif
    process = subprocess.Popen([sys.executable, "-m", "facegan", "train", "--run", str(run), "--epochs", "1000",
                                *TINY_FLAGS, "--synthetic-count", "512"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_usual)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(r["step"] > 32 for r in RunDir(run).read_metrics()):
        time.sleep(0.05)  # until a row past the first epoch's 32 steps is logged (every 2 steps)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code
    assert f"facegan: {word}; checkpoint" in err and "holds every step taken" in err and "Traceback" not in err
    state = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    assert state["step"] > 32  # the interrupt's own checkpoint, past the first epoch's
    assert run_resumes(run, state["epoch"] + 1)


def run_resumes(run, epochs):
    result = subprocess.run([sys.executable, "-m", "facegan", "train", "--run", str(run), "--epochs", str(epochs)],
                            capture_output=True, text=True, timeout=120)
    return result.returncode == 0 and "resuming" in result.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A real 600 kB file system that fills up (a tmpfs: needs root, as CI has)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_is_one_line_and_earlier_checkpoints_stay_intact(capsys, small_disk):
    run = small_disk / "run"
    code, _, err = run_cli(capsys, "train", "--run", str(run), "--epochs", "1000", *TINY_FLAGS)
    assert code == 2 and "Traceback" not in err
    error = err.strip().splitlines()[-1]
    assert error.startswith("facegan: error: cannot ") and "no space left on the device" in error, err
    saved = checkpoint.listing(run / "checkpoints")
    assert saved, "the disk filled before the first checkpoint"
    for path in saved:
        checkpoint.load(path)  # every one complete
    assert not [p for p in run.rglob("*") if p.name.endswith(".partial")]  # no temporary file left behind


def test_generate_loads_no_training_code(tmp_path):
    """Only `facegan train` builds its flag per setting (whose help asks the training
    registries): making faces imports nothing of facegan.train."""
    code = ("import sys; from facegan.cli import main; "
            f"assert main(['generate', '-n', '1', '--out', {str(tmp_path / 'x.png')!r}]) == 0; "
            "print(sorted(m for m in sys.modules if m.startswith('facegan.train')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stderr
