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
