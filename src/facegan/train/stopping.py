"""Stopping training on a signal without losing or tearing anything.

The first SIGINT (Ctrl-C) or SIGTERM asks the training loop to stop at the next step
boundary: it finishes the step it is in, saves a checkpoint of whole steps only, and
returns. A second one aborts at once (``KeyboardInterrupt``), losing the steps since the
last checkpoint; files are still never torn, since each is written atomically. With a
``grace`` period, a second signal that soon after the first counts as the same request:
under torchrun a Ctrl-C reaches each worker from the terminal and again, as SIGTERM,
from torchrun's agent.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Inside ``with StopRequest(...)``, the signals above set ``signal_name`` (the first)
    or raise KeyboardInterrupt (the second). ``on_signal(name, aborting)`` is told of each.
    Outside the main thread, where Python cannot take signals, it does nothing."""

    def __init__(self, on_signal: Callable[[str, bool], None] | None = None, grace: float = 0.0):
        self.on_signal, self.grace = on_signal, grace
        self.signal_name: str | None = None
        self.first_at = 0.0
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for number in SIGNALS:
                self.previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        self.previous.clear()

    def _handle(self, number: int, frame) -> None:
        name = signal.Signals(number).name
        if self.signal_name is not None and time.monotonic() - self.first_at < self.grace:
            return
        aborting = self.signal_name is not None
        if not aborting:
            self.signal_name, self.first_at = name, time.monotonic()
        if self.on_signal is not None:
            self.on_signal(name, aborting)
        if aborting:
            raise KeyboardInterrupt
