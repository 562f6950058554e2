import numpy as np
import pytest

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
