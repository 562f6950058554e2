"""Which device computes: the one choice that training, sampling, evaluation and the web
page all make, so it sits below all of them."""

from __future__ import annotations

import torch

from facegan.errors import FaceganError


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA where there is one, else the CPU), or a device by name, refused in
    one line when it is unknown or absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FaceganError(f"unknown device {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FaceganError(f"device {name} was asked for but CUDA is not available here")
    return device


def idle_cores(seconds: float = 0.25) -> float:
    """How many of this machine's cores other work left idle over the last ``seconds``
    (Linux's /proc/stat; elsewhere every core counts as idle)."""
    import os
    import time

    cores = os.cpu_count() or 1

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + (values[4] if len(values) > 4 else 0)  # all, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return float(cores)
    return cores * (idle1 - idle0) / max(total1 - total0, 1)


def threads_for_idle_cores() -> int:
    """One PyTorch thread per core that other work leaves idle, at least one: more threads
    than free cores make every thread wait for the others (3-8x slower on a busy machine)."""
    return max(1, round(idle_cores()))
