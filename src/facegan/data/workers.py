"""Worker processes that end with the process that started them.

A pool's workers wait for work on a pipe; if their parent is killed (kill -9, the
out-of-memory killer) nothing tells them, and they wait forever. Each worker runs
``follow_parent`` first: on Linux the kernel then kills it when its parent dies
(``PR_SET_PDEATHSIG``); elsewhere a thread checks the parent every second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def follow_parent(parent: int) -> None:
    """End this process when process ``parent`` (its parent) ends."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            _watch(parent)
    else:
        _watch(parent)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _watch(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
