"""Training images: where they come from, how they are prepared, and how they are batched."""

from __future__ import annotations

from typing import Callable

import numpy as np

from facegan.config import DataConfig
from facegan.data.synthetic import synthetic_faces


def load_images(data: DataConfig, resolution: int,
                progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, str]:
    """The training set as uint8 (N, resolution, resolution, 3), and a line saying what it is.

    An empty ``data.data`` draws the built-in synthetic faces. Otherwise it is a
    prepared cache folder, or a raw source (folder, .zip, CelebA root) that is
    prepared once into a cache (see facegan.data.prepare) and reused after that.
    """
    if not data.data:
        faces = synthetic_faces(data.synthetic_count, resolution, data.synthetic_seed)
        return faces, f"built-in synthetic faces ({data.synthetic_count:,}, seed {data.synthetic_seed})"
    from facegan.data.prepare import ensure_cache

    cache, found = ensure_cache(data.data, resolution, data.crop, data.split, progress)
    line = {"given": f"prepared cache {cache.folder}",
            "prepared": f"{data.data}, prepared now into the cache {cache.folder}",
            "reused": f"{data.data}, from its cache {cache.folder}"}[found]
    return cache.images, line
