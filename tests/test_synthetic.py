import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from facegan.data.synthetic import draw_face, synthetic_faces


@pytest.mark.parametrize("size", [8, 16, 32, 64, 128])
def test_faces_of_any_size(size):
    faces = synthetic_faces(3, size, seed=1)
    assert faces.shape == (3, size, size, 3) and faces.dtype == np.uint8


def test_deterministic_and_each_face_depends_only_on_seed_and_index():
    serial = synthetic_faces(300, 16, seed=7, workers=1)
    parallel = synthetic_faces(300, 16, seed=7, workers=2)
    assert np.array_equal(serial, parallel)
    assert np.array_equal(serial[123], draw_face(7, 123, 16))
    assert not np.array_equal(serial, synthetic_faces(300, 16, seed=8, workers=1))


def test_faces_vary_and_are_faces_in_the_middle():
    faces = synthetic_faces(200, 32, seed=0).astype(float)
    # no two faces alike
    flat = faces.reshape(len(faces), -1)
    distances = np.abs(flat[:, None, :100] - flat[None, :, :100]).sum(-1) + np.eye(len(flat)) * 1e9
    assert distances.min() > 0
    # skin tones from light to dark: the centre pixel's brightness spreads widely
    centre = faces[:, 14:18, 14:18].mean(axis=(1, 2, 3))
    assert centre.max() - centre.min() > 100
    # the centre (a face) differs from the corners (background) in most images
    corner = faces[:, :3, :3].mean(axis=(1, 2))
    assert (np.abs(faces[:, 14:18, 14:18].mean(axis=(1, 2)) - corner).sum(-1) > 30).mean() > 0.8


def children_of(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="reads /proc")
@pytest.mark.parametrize("job", [
    "from facegan.data.synthetic import synthetic_faces; synthetic_faces(200_000, 64, workers=2)",
    "from facegan.data.prepare import prepare; prepare(r'{photos}', r'{out}', 32, workers=2)",
])
def test_killing_the_parent_ends_its_drawing_or_decoding_workers(tmp_path, job):
    """kill -9 of a process drawing faces or preparing data leaves no worker waiting forever."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(400):
        Image.fromarray(np.full((64, 64, 3), i % 256, np.uint8)).save(photos / f"{i}.png")
    code = job.format(photos=photos, out=tmp_path / "cache")
    process = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(children_of(process.pid)) < 2:
        time.sleep(0.05)
    workers = children_of(process.pid)
    assert len(workers) >= 2, "the workers never started"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    for worker in workers:  # tidy up after a failure, then report it
        if alive(worker):
            os.kill(worker, signal.SIGKILL)
    assert not any(alive(w) for w in workers)
