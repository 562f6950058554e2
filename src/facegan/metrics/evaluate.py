"""``facegan evaluate``: a generator's samples against a prepared real set, in Inception space.

Reference features of a real cache are computed once per (cache content, N, seed,
Inception file) and kept beside the cache (or under $FACEGAN_CACHE when the cache
folder is read-only).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from facegan import sample
from facegan.data.cache import Cache, cache_root, open_cache
from facegan.errors import FaceganError
from facegan.metrics import distances
from facegan.metrics.faces import face_rate
from facegan.metrics.inception import Inception

Progress = Callable[[int, int], None]


def _reference_file(cache: Cache, n: int, seed: int, inception: Inception) -> list[Path]:
    info = inception.path.stat()
    key = hashlib.sha256(
        f"{cache.manifest['fingerprint']}|{cache.manifest['settings']}|{n}|{seed}|{info.st_size}|{info.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    name = f"inception-{n}-{key}.npy"
    return [cache.folder / name, cache_root() / "reference" / name]


def reference_features(cache: Cache, n: int, inception: Inception, seed: int = 0,
                       progress: Progress | None = None) -> tuple[np.ndarray, bool]:
    """Features of ``n`` real images (a seeded random subset); (features, came from disk)."""
    if n > len(cache.images):
        raise FaceganError(f"--n {n} is more than the {len(cache.images):,} images of {cache.folder}")
    places = _reference_file(cache, n, seed, inception)
    for place in places:
        if place.is_file():
            return np.load(place), True
    index = np.sort(np.random.default_rng(seed).choice(len(cache.images), n, replace=False))
    features = inception.features(cache.images[index], progress=progress)
    for place in places:
        try:
            place.parent.mkdir(parents=True, exist_ok=True)
            temporary = place.with_name(place.name + ".partial.npy")
            np.save(temporary, features)
            os.replace(temporary, place)
            break
        except OSError:
            continue
    return features, False


def compare(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """Every figure of two feature sets."""
    kid_mean, kid_std = distances.kid(real, fake)
    precision, recall = distances.precision_recall(real, fake)
    near_copies, distance_ratio = distances.memorisation(real, fake)
    return {"fid": distances.fid(real, fake), "kid_mean": kid_mean, "kid_std": kid_std,
            "precision": precision, "recall": recall, "diversity": distances.diversity(real, fake),
            "near_copies": near_copies, "nearest_real_ratio": distance_ratio}


def evaluate(checkpoint: str | Path, real: str | Path, n: int, inception_path: str | Path | None = None,
             seed: int = 0, device: torch.device = torch.device("cpu"),
             progress: Progress | None = None) -> dict[str, Any]:
    """FID, KID, precision, recall, diversity, memorisation and face rate of ``n`` samples
    of a checkpoint against ``n`` real images."""
    if n < 2:
        raise FaceganError(f"--n must be at least 2, not {n}")
    cache = open_cache(real)
    generator, config = sample.load_generator(checkpoint, device)
    size = config.model.resolution
    if cache.size != size:
        raise FaceganError(
            f"{real} holds {cache.size}x{cache.size} images but the model makes {size}x{size}; compare at equal size: "
            f"facegan prepare {cache.manifest['source']} --out DIR --size {size}"
        )
    inception = Inception(inception_path, device)
    started = time.perf_counter()
    real_features, reused = reference_features(cache, n, inception, seed, progress)
    fakes = sample.generate(generator, n, seed + 1, device)
    fake_features = inception.features(fakes, progress=progress)
    seconds = time.perf_counter() - started
    faces = face_rate(fakes)
    extracted = n * (1 if reused else 2)
    return {
        "checkpoint": str(checkpoint),
        "reference": str(cache.folder),
        "reference_images": len(cache.images),
        "n": n,
        "resolution": size,
        "inception": str(inception.path),
        **compare(real_features, fake_features),
        "face_rate": faces,
        "reference_features_cached": reused,
        "seconds": round(seconds, 2),
        "inception_images_per_s": round(extracted / seconds, 2),
    }
