"""Every facegan command of the README, run for real in the order the README gives them,
in one folder, on tiny data: each must work after the commands before it.

What is made smaller, and nothing else: training stops after two steps on 128 built-in
faces or on stand-ins of the user's files (a CelebA-layout folder, photos, a zip; the
train split's 40 in batches of 8), the
demo after three seconds, evaluations compare 8 images (4 per label set), a translator trains
on every stand-in (too few to balance) two at a time, the
classifier trains one epoch, a projection takes two steps. A checkpoint the README names by its step in a full run
(step 128, the end of epoch 1) is the run's first one here. `serve` runs until its page
and API answer, then gets Ctrl-C."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegan.conditions import CELEBA_ATTRIBUTES
from tests.test_evaluate import needs_inception
from tests.test_readme import readme_commands


def stand_ins(home: Path, work: Path) -> None:
    """The files the README's examples assume the user has."""
    rng = np.random.default_rng(0)
    celeba = home / "data" / "celeba"
    (celeba / "img_align_celeba").mkdir(parents=True)
    rows = []
    for i in range(80):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (218, 178, 3), dtype=np.uint8)).save(celeba / "img_align_celeba" / name)
        rows.append(name + " " + " ".join(rng.choice(["1", "-1"], len(CELEBA_ATTRIBUTES))))
    (celeba / "list_attr_celeba.txt").write_text(f"80\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(rows) + "\n")
    (celeba / "list_eval_partition.txt").write_text(
        "".join(f"{i + 1:06d}.jpg {0 if i < 40 else 1 if i < 60 else 2}\n" for i in range(80)))
    (home / "photos").mkdir()
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(home / "photos" / f"{i}.png")
    with zipfile.ZipFile(work / "photos.zip", "w") as archive:
        for i in range(4):
            with archive.open(f"{i}.png", "w") as member:
                Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(member, format="PNG")
    Image.fromarray(rng.integers(0, 256, (90, 90, 3), dtype=np.uint8)).save(work / "photo.jpg")
    (work / "my.toml").write_text("[train]\nepochs = 3\n")


def smaller(argv: list[str], work: Path) -> list[str]:
    """The command on tiny data (see the module's docstring)."""
    command, rest = argv[0], argv[1:]
    if command == "train":
        rest += ["--max-steps", "2", "--threads", "1", "--checkpoint-minutes", "0", "--time-limit", "0"]
        if "--data" not in rest:
            rest += ["--synthetic-count", "128"]  # one batch of the largest preset batch
        if "~/photos" in " ".join(argv) or any(a.endswith("photos") for a in rest):
            rest += ["--batch-size", "4"]
        if any(a.endswith("-train") for a in rest):  # the train split's 40 stand-ins: less than a batch of 64
            rest += ["--batch-size", "8"]
        if "smile64" in rest:  # 40 random stand-ins: too few to balance
            rest += ["--balance", "", "--batch-size", "2"]
    elif command == "demo":
        rest += ["--minutes", "0.05", "--threads", "1"]
    elif command == "evaluate":
        rest = [a for a in rest] + ["--n", "8", "--threads", "1"]
        if "--label-n" in rest:
            rest[rest.index("--label-n") + 1] = "4"
    elif command == "lesson" and "--list" not in rest:
        rest += ["--scale", "0.05", "--threads", "1"]
    elif command == "train-classifier":
        rest += ["--epochs", "1", "--batch-size", "16"]
    elif command == "project":
        rest += ["--steps", "2", "--starts", "2"]
    elif command == "generate":
        for i, a in enumerate(rest):
            if a.endswith("step-00000128.pt"):
                run = Path(a).parent
                rest[i] = str(sorted((work / run).glob("step-*.pt"))[0])
    return [command, *rest]


def serve_briefly(base: list[str], argv: list[str], work: Path, env: dict) -> None:
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 8000
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            pytest.skip(f"port {port} is taken on this machine")
    server = subprocess.Popen([*base, *argv, "--threads", "1"], cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                api = "/api/lesson" if "--lesson" in argv else "/api/faces?n=2"
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{api}", timeout=5) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.3)
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()


@pytest.mark.slow
@needs_inception
def test_every_readme_command_runs_in_order(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    stand_ins(home, work)
    env = {**os.environ, "HOME": str(home), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "facegan"]
    ran = []
    for command in readme_commands():
        argv = [os.path.expanduser(w).replace(str(Path.home()), str(home)) if w.startswith("~") else w
                for w in shlex.split(command)]
        argv = [str(home / w[2:]) if w.startswith("~/") else w for w in argv]
        if argv[0] == "serve":
            serve_briefly(base, argv, work, env)
            ran.append(command)
            continue
        done = subprocess.run([*base, *smaller(argv, work)], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        ran.append(command)
    kinds = {c.split()[0] for c in ran}
    assert {"train", "prepare", "evaluate", "generate", "export", "serve", "project", "demo", "lesson"} <= kinds
