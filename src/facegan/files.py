"""Writing files so that no crash, kill or full disk leaves a torn one under its real name.

Every file facegan writes whole (checkpoints, config.toml, caches' arrays and manifests,
grids, pictures, the metrics log when it is trimmed) goes through ``atomic_write``: the
content goes to a temporary file in the same folder (named after the writing process,
so two writers never share one), is flushed to disk, and is renamed over the real
name; then the folder itself is flushed, so the rename survives a power cut. A failed
write removes its temporary file and ends in one line (``FaceganError``), never a
chained traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from facegan.errors import FaceganError

PARTIAL = ".partial"  # temporary files end in this; a folder's stale ones may be deleted


def temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL}")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file, then put it in place as ``path``."""
    path = Path(path)
    temporary = temporary_name(path)
    try:
        with open(temporary, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        sync_folder(path.parent)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError over the OSError
        temporary.unlink(missing_ok=True)
        cause = os_error_in(e)
        if cause is None:
            raise
        raise FaceganError(f"cannot write {path}: {describe(cause, path.parent)}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def os_error_in(error: BaseException | None) -> OSError | None:
    """The OSError an exception is, or was raised while handling, if any."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def describe(error: OSError, where: Path | None = None) -> str:
    """An OSError in a few words; a full disk says how much room is left."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT) and where is not None:
        try:
            free = shutil.disk_usage(where).free
            return (f"no space left on the device ({free / 2**20:,.1f} MiB free without the unfinished file); "
                    "free some and run the command again")
        except OSError:
            pass
    return error.strerror or str(error)


# Reading: every file facegan is handed goes through these. Only regular files are read
# (a FIFO would block forever, a device never ends, a folder is not a file), each kind
# with a size bound checked before a byte is read, text as UTF-8, and nested data
# (JSON, TOML) bounded in depth.

MAX_NESTING = 64  # depth of nested tables or lists in any file facegan reads


def kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISREG, "a file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def regular_file(path: str | Path, what: str, limit: int | None = None) -> Path:
    """``path`` when it is a regular file (after symlinks) of at most ``limit`` bytes;
    else one line saying what it is instead (``what`` names it: "checkpoint", ...)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FaceganError(f"{what} {path} does not exist"
                           + (" (a symlink to nothing)" if path.is_symlink() else "")) from None
    except OSError as e:
        raise FaceganError(f"cannot read {what} {path}: {describe(e)}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FaceganError(f"{what} {path} is {kind_of(info.st_mode)}, not a file")
    if limit is not None and info.st_size > limit:
        raise FaceganError(f"{what} {path} is {info.st_size / 2**20:,.1f} MiB, more than a {what} can be "
                           f"({limit / 2**20:,.1f} MiB)")
    return path


def read_bytes(path: str | Path, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file: a file that grew past its bound since it
    was measured (or one that tells no size, as /proc's) is refused, not read whole."""
    path = regular_file(path, what, limit)
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise FaceganError(f"cannot read {what} {path}: {describe(e)}") from None
    if len(data) > limit:
        raise FaceganError(f"{what} {path} is more than a {what} can be ({limit / 2**20:,.1f} MiB)")
    return data


def read_text(path: str | Path, what: str, limit: int) -> str:
    data = read_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FaceganError(f"{what} {path} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r})") from None


def parse_json(text: str, what: str):
    """JSON, refused in one line when it does not parse or nests too deeply."""
    import json

    return _parse(text, what, "JSON", json.loads, json.JSONDecodeError)


def parse_toml(text: str, what: str) -> dict:
    """TOML, refused in one line when it does not parse or nests too deeply."""
    import tomllib

    return _parse(text, what, "TOML", tomllib.loads, tomllib.TOMLDecodeError)


def _parse(text: str, what: str, language: str, parse, error: type[Exception]):
    if _bracket_depth(text, "[{", "]}") > MAX_NESTING:
        raise FaceganError(f"{what} nests more than {MAX_NESTING} levels deep")
    try:
        return parse(text)
    except (error, RecursionError) as e:
        raise FaceganError(f"{what} is not valid {language}: {str(e)[:160]}") from None


def _bracket_depth(text: str, opening: str, closing: str) -> int:
    """The deepest run of unclosed brackets in ``text`` (an upper bound on its nesting:
    brackets in strings count too, which only makes the bound safer)."""
    depth = deepest = 0
    for char in text:
        if char in opening:
            depth += 1
            deepest = max(deepest, depth)
        elif char in closing:
            depth -= 1
    return deepest


def make_folder(folder: str | Path) -> Path:
    """``folder`` and its parents, made if need be; a part of the path that exists but is
    no folder is named in one line (mkdir's own "File exists" names nothing)."""
    folder = Path(folder)
    for part in [folder, *folder.parents]:
        if part.exists():
            if not part.is_dir():
                raise FaceganError(f"cannot make the folder {folder}: {part} is {kind_of(os.stat(part).st_mode)}")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FaceganError(f"cannot make the folder {folder}: {describe(e, folder.parent)}") from None
    return folder
