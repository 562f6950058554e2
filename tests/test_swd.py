import numpy as np

from facegan.data.synthetic import synthetic_faces
from facegan.metrics.swd import sliced_wasserstein


def test_zero_for_the_same_set_and_small_for_two_samples_of_one_distribution():
    faces = synthetic_faces(600, 16, seed=0)
    assert sliced_wasserstein(faces, faces) == 0.0
    same_kind = sliced_wasserstein(faces[:300], faces[300:])
    noise = np.random.default_rng(0).integers(0, 256, faces[:300].shape, dtype=np.uint8)
    grey = np.full_like(faces[:300], 128)
    assert same_kind < sliced_wasserstein(faces[:300], grey) / 3
    assert same_kind < sliced_wasserstein(faces[:300], noise) / 3


def test_grows_with_a_colour_shift():
    faces = synthetic_faces(300, 16, seed=0)
    shifted = [sliced_wasserstein(faces, np.clip(faces.astype(int) + s, 0, 255).astype(np.uint8)) for s in (5, 20, 60)]
    assert shifted[0] < shifted[1] < shifted[2]


def test_sets_of_different_sizes():
    faces = synthetic_faces(300, 16, seed=0)
    assert sliced_wasserstein(faces[:100], faces[100:]) > 0
