"""What a benchmark ran on, printed beside its figures: figures from different machines do not compare."""

from __future__ import annotations

import os

import torch

from facegan.train.speed import detect


def describe() -> dict[str, object]:
    cpu = detect(torch.device("cpu"))  # the reading facegan's own "auto" settings go by
    return {
        "cpu": cpu.name,
        "cores": os.cpu_count(),
        "cpu_capability": cpu.capability,
        "amx": cpu.bf16 == "amx",
        "native_bf16": cpu.bf16 or None,
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }
