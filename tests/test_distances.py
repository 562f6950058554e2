"""FID, KID and precision/recall against closed forms and direct computations."""

import numpy as np
import pytest

from facegan.metrics import distances


def random_rotation(d, rng):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return q


def test_frechet_distance_matches_the_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(0)
    d = 6
    q = random_rotation(d, rng)
    a, b = rng.uniform(0.5, 3, d), rng.uniform(0.5, 3, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert distances.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_general_gaussians_is_symmetric_and_matches_1d():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2 = m1 @ m1.T + np.eye(5), m2 @ m2.T + np.eye(5)
    mu = np.zeros(5)
    assert distances.frechet_distance(mu, s1, mu, s2) == pytest.approx(distances.frechet_distance(mu, s2, mu, s1), rel=1e-8)
    # one dimension: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2
    assert distances.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(4 + 1)


def test_fid_of_a_set_with_itself_is_zero_and_samples_approach_the_closed_form():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 8))
    assert abs(distances.fid(x, x)) < 1e-8
    y = rng.normal(loc=0.5, scale=2.0, size=(200_000, 8))
    z = rng.normal(size=(200_000, 8))
    # closed form: 8 * 0.5^2 + 8 * (2 - 1)^2 = 10
    assert distances.fid(y, z) == pytest.approx(10.0, rel=0.01)


def naive_mmd2(x, y):
    k = lambda a, b: (a @ b / x.shape[1] + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_unbiased_mmd_matches_a_direct_double_sum():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 4)), rng.normal(loc=0.3, size=(9, 4))
    assert distances.mmd2_unbiased(x, y) == pytest.approx(naive_mmd2(x, y), rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16))
    same_mean, same_std = distances.kid(a, b, subsets=20, subset_size=200)
    assert abs(same_mean) < 3 * same_std + 1e-3
    shifted_mean, _ = distances.kid(a, b + 0.5, subsets=20, subset_size=200)
    assert shifted_mean > 10 * abs(same_mean) and shifted_mean > 0.01
    assert distances.kid(a, b, subsets=20, subset_size=200) == (same_mean, same_std)  # seeded


def test_precision_and_recall():
    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 8))
    assert distances.precision_recall(real, real) == (1.0, 1.0)
    far = rng.normal(size=(300, 8)) + 100
    assert distances.precision_recall(real, far) == (0.0, 0.0)
    # samples from the middle of the real cloud only: precise, but covering little of it
    collapsed = real[np.linalg.norm(real, axis=1) < 2][:20]
    precision, recall = distances.precision_recall(real, collapsed)
    assert precision == 1.0 and recall < 0.5


def test_diversity_is_one_for_the_data_itself_and_near_zero_for_a_collapse():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(300, 8))
    assert distances.diversity(real, real) == pytest.approx(1.0)
    collapsed = real[0] + 0.01 * rng.normal(size=(300, 8))
    assert distances.diversity(real, collapsed) < 0.02
    fresh = rng.normal(size=(300, 8))
    assert distances.diversity(real, fresh) == pytest.approx(1.0, abs=0.1)


def test_diversity_sees_a_collapse_onto_a_few_distinct_faces():
    """Ten modes, each repeated with small variations: as spread out as the data overall,
    but every sample has a near twin."""
    rng = np.random.default_rng(8)
    real = rng.normal(size=(300, 8))
    modes = real[rng.integers(0, 10, 300)] + 0.05 * rng.normal(size=(300, 8))
    assert distances.diversity(real, modes) < 0.1


def test_memorisation_flags_copies_not_fresh_samples():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(400, 8))
    copies = real[:100] + 1e-6
    share, ratio = distances.memorisation(real, copies)
    assert share == 1.0 and ratio < 1e-3
    fresh = rng.normal(size=(400, 8))
    share, ratio = distances.memorisation(real, fresh)
    assert share < 0.05 and 0.7 < ratio < 1.5
