"""Training images: where they come from, how they are prepared, and how they are batched."""

from __future__ import annotations

from typing import Callable

import numpy as np

from facegan.config import DataConfig
from facegan.errors import FaceganError
from facegan.data.synthetic import drawn_once


def describe_data(data: DataConfig, resolution: int) -> str:
    """What ``load_images`` would train on, in a line, without decoding anything; refuses
    a source that cannot be used (missing, not a source, a cache of another size)."""
    if not data.data:
        return (f"built-in synthetic faces ({data.synthetic_count:,}, seed {data.synthetic_seed}), drawn once and "
                "kept for the next start")
    from facegan.data import cache
    from facegan.data.prepare import check_size, check_split
    from facegan.data.sources import open_source

    if cache.is_cache(data.data):
        opened = check_split(check_size(cache.open_cache(data.data), resolution), data.split)
        return f"prepared cache {opened.folder} ({len(opened.images):,} images, {opened.size} px)"
    listing = open_source(data.data, data.split)
    return (f"{listing.kind} {data.data}: {len(listing.items):,} images, prepared once at {resolution} px "
            f"(crop {data.crop}) into a cache under {cache.cache_root()}")


def load_images(data: DataConfig, resolution: int, progress: Callable[[int, int], None] | None = None,
                attributes: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray | None, str]:
    """The training set as uint8 (N, resolution, resolution, 3), its labels, and a line
    saying what it is. Labels are the float32 0/1 columns (N, len(attributes)) of the
    named CelebA attributes, or None when none are named.

    An empty ``data.data`` draws the built-in synthetic faces. Otherwise it is a
    prepared cache folder, or a raw source (folder, .zip, CelebA root) that is
    prepared once into a cache (see facegan.data.prepare) and reused after that.
    """
    if not data.data:
        if attributes:
            raise FaceganError(f"training on the labels {', '.join(attributes)} needs CelebA's attributes: give --data "
                               "a CelebA root or a cache prepared from one (the built-in faces have none)")
        from facegan.data.cache import cache_root

        faces = drawn_once(data.synthetic_count, resolution, data.synthetic_seed, cache_root() / "synthetic", progress)
        return faces, None, f"built-in synthetic faces ({data.synthetic_count:,}, seed {data.synthetic_seed})"
    from facegan.data.prepare import ensure_cache

    cache, found = ensure_cache(data.data, resolution, data.crop, data.split, progress)
    line = {"given": f"prepared cache {cache.folder}",
            "prepared": f"{data.data}, prepared now into the cache {cache.folder}",
            "reused": f"{data.data}, from its cache {cache.folder}"}[found]
    labels = cache.attribute_columns(attributes) if attributes else None
    return cache.images, labels, line
