"""Distances between two sets of feature vectors: FID, KID, and k-NN precision/recall.

FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two
sets, |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)). The trace of the matrix square
root is computed as the sum of square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2),
a symmetric matrix, so no general (possibly complex) sqrtm is needed.

KID (Binkowski et al. 2018): the unbiased MMD^2 with the kernel (x.y / d + 1)^3,
averaged over random subsets; reported as mean and standard deviation.

Precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the union of
balls around its points with radius the distance to the k-th nearest neighbour in the
same set. Precision: the share of generated points inside the real manifold; recall:
the share of real points inside the generated manifold.
"""

from __future__ import annotations

import numpy as np


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid(a: np.ndarray, b: np.ndarray) -> float:
    return frechet_distance(*gaussian(a), *gaussian(b))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3."""
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over random subsets of both sets."""
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.clip((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2 * x @ y.T, 0, None)


def _coverage(manifold: np.ndarray, radii: np.ndarray, points: np.ndarray) -> float:
    """Share of ``points`` within the radius of at least one ``manifold`` point."""
    inside = _squared_distances(points, manifold) <= radii[None, :]
    return float(inside.any(axis=1).mean())


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each point to its k-th nearest other point."""
    distances = _squared_distances(features, features)
    return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    return (_coverage(real, knn_radii(real, k), fake), _coverage(fake, knn_radii(fake, k), real))


def diversity(real: np.ndarray, fake: np.ndarray) -> float:
    """Median distance from each sample to its nearest other sample, over the same among
    the real images: about 1 when samples are as varied as the data, near 0 when they
    repeat a few faces. (Nearest neighbours, not mean pairwise distances: a generator
    stuck on a handful of distinct faces keeps a large mean pairwise distance.)"""
    return float(np.median(np.sqrt(knn_radii(fake, 1))) / np.median(np.sqrt(knn_radii(real, 1))))


def memorisation(real: np.ndarray, fake: np.ndarray, quantile: float = 0.01) -> tuple[float, float]:
    """(share of near-copies, median distance ratio).

    A sample is a near-copy when its nearest real image is closer than the ``quantile``
    (1%) of the distances from real images to their nearest other real image. The ratio
    is each sample's nearest-real distance over the median real-to-real one.
    """
    real_nn = np.sqrt(knn_radii(real, 1))
    fake_nn = np.sqrt(_squared_distances(fake, real).min(axis=1))
    return float((fake_nn < np.quantile(real_nn, quantile)).mean()), float(np.median(fake_nn) / np.median(real_nn))
