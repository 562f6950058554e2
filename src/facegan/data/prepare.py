"""``prepare``: decode every image of a source once, in parallel, into a cache.

Re-running with the same source (same files, sizes and times) and settings reuses the
cache. A bad file is skipped and listed with its reason; it never stops the run.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facegan.data import cache
from facegan.data.decode import MAX_PIXELS, Crop, Unusable, decode
from facegan.data.sources import Item, open_source
from facegan.data.workers import follow_parent
from facegan.errors import FaceganError

Progress = Callable[[int, int], None]

_worker: dict[str, Any] = {}


def _start_worker(kind: str, root: str, size: int, crop: Crop, allow_upscale: bool, max_pixels: int,
                  parent: int | None = None) -> None:
    if parent is not None:
        follow_parent(parent)
    _worker.update(kind=kind, size=size, crop=crop, allow_upscale=allow_upscale, max_pixels=max_pixels,
                   archive=zipfile.ZipFile(root) if kind == "zip" else None)


def _decode_item(item: Item) -> tuple[np.ndarray | None, str | None, str | None]:
    """(image, conversion note, None) or (None, None, reason to skip)."""
    w = _worker
    try:
        if w["archive"] is not None:
            # zipfile reads no more than the member's declared size, which the listing bounded
            with w["archive"].open(item.location) as member:
                source: Any = io.BytesIO(member.read())
        else:
            source = item.location
        image, note = decode(source, w["size"], w["crop"], w["allow_upscale"], w["max_pixels"])
        return image, note, None
    except Unusable as e:
        return None, None, str(e)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError) as e:
        return None, None, f"cannot read ({e})"


def settings_of(size: int, crop: Crop, split: str, allow_upscale: bool) -> dict[str, Any]:
    return {"size": size, "crop": str(crop), "split": split, "allow_upscale": allow_upscale}


def default_cache_dir(source: str | Path, size: int, crop: Crop, split: str) -> Path:
    """Where ``train --data RAW_SOURCE`` keeps its cache: $FACEGAN_CACHE or ~/.cache/facegan."""
    base = cache.cache_root()
    resolved = Path(source).resolve()
    key = hashlib.sha256(f"{resolved}|{size}|{crop}|{split}".encode()).hexdigest()[:10]
    return base / "prepared" / f"{resolved.name}-{size}px-{str(crop).replace(',', '_')}-{split}-{key}"


def prepare(
    source: str | Path,
    out: str | Path,
    size: int,
    crop: str | Crop = "center",
    split: str = "all",
    allow_upscale: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    max_pixels: int = MAX_PIXELS,
) -> tuple[dict[str, Any], bool]:
    """Prepare ``source`` into the cache folder ``out``; returns (manifest, reused)."""
    if size < 4:
        raise FaceganError(f"size must be at least 4, not {size}")
    try:
        crop = crop if isinstance(crop, Crop) else Crop.parse(crop)
    except ValueError as e:
        raise FaceganError(str(e)) from None
    listing = open_source(source, split)
    out = Path(out)
    settings = settings_of(size, crop, split, allow_upscale)
    fingerprint = listing.fingerprint()
    existing = cache.read_manifest(out)
    damaged = None
    if existing and existing.get("settings") == settings and existing.get("fingerprint") == fingerprint:
        try:
            cache.open_cache(out)
            return existing, True
        except FaceganError as e:  # the same source and settings, but the arrays were damaged since
            damaged = str(e)

    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / cache.MANIFEST).unlink(missing_ok=True)  # from now on the folder is not a complete cache
    except OSError as e:
        raise FaceganError(f"cannot write cache {out}: {e.strerror or e}") from None

    started = time.perf_counter()
    kept: list[int] = []
    skipped = [{"file": s.name, "reason": s.reason} for s in listing.skipped]
    conversions: Counter[str] = Counter()
    writer = cache.ImageWriter(out / "images.npy.partial", size)
    workers = max(1, workers or os.cpu_count() or 1)
    init = (listing.kind, str(listing.root), size, crop, allow_upscale, max_pixels)
    total = len(listing.items)
    try:
        if workers == 1 or total < 64:
            _start_worker(*init)
            results = map(_decode_item, listing.items)
            pool = None
        else:
            pool = multiprocessing.get_context("spawn").Pool(workers, _start_worker, (*init, os.getpid()))
            results = pool.imap(_decode_item, listing.items, chunksize=32)
        for index, (image, note, reason) in enumerate(results):
            if image is not None:
                writer.append(image)
                kept.append(index)
                if note:
                    conversions[note] += 1
            else:
                skipped.append({"file": listing.items[index].name, "reason": reason})
            if progress:
                progress(index + 1, total)
    finally:
        writer.close()
        if pool is not None:
            pool.terminate()
        if _worker.get("archive") is not None:
            _worker["archive"].close()
        _worker.clear()

    if not kept:
        (out / "images.npy.partial").unlink(missing_ok=True)
        raise FaceganError(f"no usable image in {source}: {len(skipped)} skipped ({_summary(skipped)})")
    os.replace(out / "images.npy.partial", out / "images.npy")
    for name, values in listing.labels.items():
        cache.write_array(out / f"{name}.npy", values[kept])
    for name in cache.LABELS:
        if name not in listing.labels:
            (out / f"{name}.npy").unlink(missing_ok=True)
    manifest = {
        "format": cache.FORMAT,
        "complete": True,
        "source": str(Path(source).resolve()),
        "source_kind": listing.kind,
        "fingerprint": fingerprint,
        "settings": settings,
        "count": len(kept),
        "found": total + len(listing.skipped),
        "ignored_non_image_files": listing.ignored,
        "skipped_count": len(skipped),
        "skipped": skipped,
        "conversions": dict(conversions),
        "files": [listing.items[i].name for i in kept],
        "attribute_names": listing.attribute_names,
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": int((out / "images.npy").stat().st_size),
        **({"repaired": damaged} if damaged else {}),
    }
    cache.write_manifest(out, manifest)
    return manifest, False


def _summary(skipped: list[dict[str, str]]) -> str:
    """'2 not an image, 1 empty file': reasons without their details, most common first."""
    reasons = Counter(s["reason"].split(" (")[0].split(":")[0] for s in skipped)
    return ", ".join(f"{n} {r}" for r, n in reasons.most_common())


def skipped_summary(manifest: dict[str, Any]) -> str:
    """One line: how many files were skipped, by reason."""
    if not manifest["skipped"]:
        return "nothing skipped"
    return f"skipped {manifest['skipped_count']}: {_summary(manifest['skipped'])}"


def ensure_cache(data: str | Path, size: int, crop: str = "center", split: str = "all",
                 progress: Progress | None = None) -> tuple[cache.Cache, str]:
    """A cache of ``size`` for ``data``: the cache itself, or a raw source prepared once.

    Returns (cache, how it was found): "given" (``data`` is a cache), "prepared" (made
    now from the raw source) or "reused" (made from it earlier).
    """
    data = Path(data)
    if cache.is_cache(data):
        return check_split(check_size(cache.open_cache(data), size), split), "given"
    try:
        target = default_cache_dir(data, size, Crop.parse(crop), split)
    except ValueError as e:
        raise FaceganError(str(e)) from None
    _, reused = prepare(data, target, size, crop, split, progress=progress)
    return cache.open_cache(target), "reused" if reused else "prepared"


def check_split(opened: cache.Cache, split: str) -> cache.Cache:
    """The cache, if it holds the CelebA split asked for ("all" takes any cache as it is);
    else the error says how to make one that does. A split is chosen when a source is
    prepared: a cache is never silently trained on whole when a part was asked for."""
    held = opened.manifest["settings"].get("split", "all")
    if split != "all" and held != split:
        raise FaceganError(
            f"data.split is {split!r} but {opened.folder} holds the {held!r} split; prepare that split with: "
            f"facegan prepare {opened.manifest['source']} --out DIR --size {opened.size} --split {split}"
        )
    return opened


def check_size(opened: cache.Cache, size: int) -> cache.Cache:
    """The cache, if its images are ``size`` px; else the error says how to make one that is."""
    if opened.size != size:
        raise FaceganError(
            f"{opened.folder} holds {opened.size}x{opened.size} images but the model makes {size}x{size}; "
            f"prepare one with: facegan prepare {opened.manifest['source']} --out DIR --size {size}"
            f" --crop {opened.manifest['settings']['crop']}"
        )
    return opened
