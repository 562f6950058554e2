"""The prepared data set on disk, and how it is written so that no crash fakes it.

    DIR/
      images.npy       uint8 (N, S, S, 3), read memory-mapped
      attributes.npy   uint8 (N, 40) of 0/1, CelebA only (names in the manifest)
      identity.npy     int32 (N,), CelebA only
      split.npy        int8 (N,): 0 train, 1 val, 2 test, CelebA only
      manifest.json    source, settings, counts, skipped files and why; written last

A cache is complete only when manifest.json exists and says so. Arrays are written
under temporary names and renamed into place before the manifest is written; a
prepare that dies half way leaves no manifest, so the cache is not mistaken for done.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facegan import files
from facegan.errors import FaceganError

MANIFEST = "manifest.json"
FORMAT = "facegan-cache-1"
LABELS = ("attributes", "identity", "split")
HEADER_BYTES = 128  # room reserved for the .npy header, rewritten once N is known


class ImageWriter:
    """Append uint8 (S, S, 3) images to a .npy file without knowing N in advance."""

    def __init__(self, path: Path, size: int):
        self.path, self.size, self.count = path, size, 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * HEADER_BYTES)

    def append(self, image: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        self.count += 1

    def close(self) -> None:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, {"descr": "|u1", "fortran_order": False, "shape": (self.count, self.size, self.size, 3)}
        )
        data = header.getvalue()
        assert len(data) <= HEADER_BYTES
        # pad the header dict with spaces so the data starts exactly at HEADER_BYTES
        padded = data[:-1] + b" " * (HEADER_BYTES - len(data)) + b"\n"
        padded = padded[:8] + (HEADER_BYTES - 10).to_bytes(2, "little") + padded[10:]
        self.file.seek(0)
        self.file.write(padded)
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def cache_root() -> Path:
    """Where facegan keeps what it computes once: $FACEGAN_CACHE, else ~/.cache/facegan."""
    if os.environ.get("FACEGAN_CACHE"):
        return Path(os.environ["FACEGAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "facegan"


def write_array(path: Path, array: np.ndarray) -> None:
    files.atomic_write(path, lambda f: np.save(f, array))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    files.write_text(folder / MANIFEST, json.dumps(manifest, indent=1))


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete cache, or None."""
    try:
        manifest = files.parse_json(files.read_text(Path(folder) / MANIFEST, "cache manifest", 256 * 2**20),
                                    "cache manifest")
    except FaceganError:
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not manifest.get("complete"):
        return None
    for key, kind in (("count", int), ("fingerprint", str), ("settings", dict), ("source", str)):
        if not isinstance(manifest.get(key), kind):
            return None  # damaged: prepared again, or refused by open_cache
    return manifest


def is_cache(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).exists()


@dataclass
class Cache:
    folder: Path
    manifest: dict[str, Any]
    images: np.ndarray  # memory-mapped uint8 (N, S, S, 3)
    labels: dict[str, np.ndarray]

    @property
    def size(self) -> int:
        return self.images.shape[1]

    def attribute_columns(self, names: tuple[str, ...]) -> np.ndarray:
        """float32 0/1 (N, len(names)): the CelebA attribute columns of ``names``, in that order."""
        known = self.manifest.get("attribute_names")
        if "attributes" not in self.labels or not known:
            raise FaceganError(f"{self.folder} holds no CelebA attributes: prepare a CelebA root "
                               "(with list_attr_celeba.txt)")
        unknown = [n for n in names if n not in known]
        if unknown:
            raise FaceganError(f"{self.folder} has no attribute {', '.join(unknown)} (it has: {', '.join(known)})")
        return self.labels["attributes"][:, [known.index(n) for n in names]].astype(np.float32)


def open_cache(folder: str | Path) -> Cache:
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FaceganError(f"{folder} is not a complete prepared cache (no valid {MANIFEST}); run facegan prepare again")
    try:
        images = np.load(folder / "images.npy", mmap_mode="r")
        labels = {name: np.load(folder / f"{name}.npy") for name in LABELS if (folder / f"{name}.npy").exists()}
    except (OSError, ValueError) as e:
        raise FaceganError(f"cache {folder} is damaged: {e}") from None
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3 or len(images) != manifest["count"]:
        raise FaceganError(f"cache {folder} is damaged: images.npy holds {images.dtype} {images.shape}")
    for name, values in labels.items():
        if len(values) != len(images):
            raise FaceganError(f"cache {folder} is damaged: {name}.npy has {len(values)} rows for {len(images)} images")
    return Cache(folder, manifest, images, labels)
