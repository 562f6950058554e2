"""Where images come from: a folder (searched recursively), a .zip, or a CelebA root.

A source lists its image files as ``Item``s, in a stable sorted order, and (for CelebA)
the labels of each. Files it cannot use before even decoding them (a zip member with an
unsafe name, a symlink loop, a FIFO, an image without its CelebA attribute row) are
listed as ``Skipped`` with the reason, never silently dropped.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from facegan import files
from facegan.errors import FaceganError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}
MAX_FILE_BYTES = 256 * 2**20  # a zip member is read into memory whole: one declared larger is skipped


@dataclass
class Item:
    name: str  # path relative to the source root, with forward slashes
    location: str  # a file path, or a zip member name


@dataclass
class Skipped:
    name: str
    reason: str


@dataclass
class Listing:
    kind: str  # "folder", "zip" or "celeba"
    root: Path
    items: list[Item]
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0  # files without an image extension
    labels: dict[str, np.ndarray] = field(default_factory=dict)  # aligned with items
    attribute_names: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A hash of every listed file's name, size and modification time."""
        digest = hashlib.sha256(f"{self.kind}:{self.root.resolve()}".encode())
        if self.kind == "zip":
            info = self.root.stat()
            digest.update(f"{info.st_size}:{info.st_mtime_ns}".encode())
        for item in self.items:
            digest.update(item.name.encode())
            if self.kind != "zip":
                try:
                    info = os.stat(item.location)
                    digest.update(f":{info.st_size}:{info.st_mtime_ns}".encode())
                except OSError:
                    digest.update(b":unreadable")
        return digest.hexdigest()


def is_celeba(path: Path) -> bool:
    return (path / "img_align_celeba").is_dir() and (path / "list_attr_celeba.txt").is_file()


def open_source(path: str | Path, split: str = "all") -> Listing:
    """List the images of ``path``; ``split`` (train, val, test, all) applies to CelebA."""
    path = Path(path)
    if not path.exists():
        raise FaceganError(f"source {path} does not exist")
    if split not in ("all", *CELEBA_SPLITS):
        raise FaceganError(f"split must be train, val, test or all, not {split!r}")
    kind = os.stat(path).st_mode
    if not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
        raise FaceganError(f"source {path} is {files.kind_of(kind)}: give a folder, a .zip or a CelebA root")
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise FaceganError(f"source {path} is a file but not a zip archive")
        listing = list_zip(path)
    elif is_celeba(path):
        listing = list_celeba(path, split)
    else:
        listing = list_folder(path)
    if split != "all" and listing.kind != "celeba":
        raise FaceganError(f"--split {split} needs a CelebA root (img_align_celeba/ and list_attr_celeba.txt); {path} is a {listing.kind}")
    if not listing.items and not listing.skipped:
        raise FaceganError(f"no images found in {path} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    return listing


def list_folder(root: Path) -> Listing:
    """Every image file below ``root``. Symlinked folders are not entered (no loops)."""
    items, skipped, ignored = [], [], 0

    def unlistable(error: OSError) -> None:
        name = os.path.relpath(error.filename, root).replace(os.sep, "/") if error.filename else str(root)
        skipped.append(Skipped(name + "/", f"cannot list folder ({error.strerror})"))

    for folder, dirs, names in os.walk(root, followlinks=False, onerror=unlistable):
        dirs.sort()
        for filename in sorted(names):
            full = os.path.join(folder, filename)
            name = os.path.relpath(full, root).replace(os.sep, "/")
            if Path(filename).suffix.lower() not in IMAGE_EXTENSIONS:
                ignored += 1
                continue
            reason = _unusable_file(full)
            if reason:
                skipped.append(Skipped(name, reason))
            else:
                items.append(Item(name, full))
    return Listing("folder", root, items, skipped, ignored)


def _unusable_file(path: str) -> str | None:
    """Why a listed path cannot be read as a file, or None if it can be tried."""
    try:
        info = os.stat(path)  # follows symlinks
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symlink loop"
        return f"cannot read ({e.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size == 0:
        return "empty file"
    if not os.access(path, os.R_OK):
        return "cannot read (permission denied)"
    return None


def _safe_member(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and not name.startswith(("/", "\\")) and ".." not in parts and ":" not in parts[0]


def list_zip(path: Path) -> Listing:
    items, skipped, ignored = [], [], 0
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted(archive.infolist(), key=lambda m: m.filename)
    except (zipfile.BadZipFile, OSError) as e:
        raise FaceganError(f"cannot read zip {path}: {e}") from None
    for member in members:
        if member.is_dir():
            continue
        name = member.filename
        if PurePosixPath(name).suffix.lower() not in IMAGE_EXTENSIONS:
            ignored += 1
        elif not _safe_member(name):
            skipped.append(Skipped(name, "unsafe path in zip (absolute or with '..')"))
        elif member.file_size == 0:
            skipped.append(Skipped(name, "empty file"))
        elif member.file_size > MAX_FILE_BYTES:
            skipped.append(Skipped(name, f"too large ({member.file_size / 2**20:,.0f} MiB declared, at most "
                                         f"{MAX_FILE_BYTES // 2**20} MiB)"))
        else:
            items.append(Item(name, name))
    return Listing("zip", path, items, skipped, ignored)


def _read_table(path: Path, what: str) -> list[list[str]]:
    try:
        return [line.split() for line in path.read_text().splitlines() if line.strip()]
    except OSError as e:
        raise FaceganError(f"cannot read CelebA {what} file {path}: {e.strerror or e}") from None


def list_celeba(root: Path, split: str = "all") -> Listing:
    """CelebA's official layout: images with 40 attributes, identity and split.

    Only images present in ``img_align_celeba/`` are used (a subset is fine). An image
    whose attribute row is missing or malformed is skipped with that reason.
    """
    folder = list_folder(root / "img_align_celeba")
    rows = _read_table(root / "list_attr_celeba.txt", "attribute")
    if len(rows) < 2 or len(rows[1]) < 1:
        raise FaceganError(f"{root / 'list_attr_celeba.txt'} has no header line of attribute names")
    names = rows[1]
    attributes: dict[str, list[str]] = {r[0]: r[1:] for r in rows[2:]}
    identity = {r[0]: r[1] for r in _read_table(root / "identity_CelebA.txt", "identity") if len(r) == 2} \
        if (root / "identity_CelebA.txt").exists() else {}
    partition = {r[0]: r[1] for r in _read_table(root / "list_eval_partition.txt", "split") if len(r) == 2} \
        if (root / "list_eval_partition.txt").exists() else {}
    if split != "all" and not partition:
        raise FaceganError(f"--split {split} needs {root / 'list_eval_partition.txt'}")

    items, skipped = [], list(folder.skipped)
    attr_rows, ids, splits = [], [], []
    for item in folder.items:
        key = PurePosixPath(item.name).name
        row = attributes.get(key)
        if row is None:
            skipped.append(Skipped(item.name, "no row in list_attr_celeba.txt"))
            continue
        if len(row) != len(names) or any(v not in ("1", "-1") for v in row):
            skipped.append(Skipped(item.name, f"malformed attribute row ({len(row)} values, {len(names)} expected, each 1 or -1)"))
            continue
        part = int(partition.get(key, -1)) if partition.get(key, "-1").lstrip("-").isdigit() else -1
        if split != "all" and part != CELEBA_SPLITS[split]:
            continue
        items.append(item)
        attr_rows.append([v == "1" for v in row])
        ids.append(int(identity[key]) if identity.get(key, "").isdigit() else -1)
        splits.append(part)
    labels = {
        "attributes": np.array(attr_rows, dtype=np.uint8).reshape(len(items), len(names)),
        "identity": np.array(ids, dtype=np.int32),
        "split": np.array(splits, dtype=np.int8),
    }
    return Listing("celeba", root, items, skipped, folder.ignored, labels, names)
