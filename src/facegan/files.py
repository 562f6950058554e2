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
