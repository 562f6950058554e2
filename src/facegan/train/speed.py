"""The fast path: turns the [speed] settings into concrete choices for one device, and
applies them to the networks, the optimisers and the data.

"auto" means: on for CUDA, where each of these is a known win. On a CPU, what measured
fastest on a 2-core AVX2 machine (benchmarks/train_speed.py, docs/benchmarks.md):
channels_last only (1.22x on the demo model, 1.24x on dcgan64, within noise on
thesis128). There torch.compile gained 2-19% after 25-40 s of compiling (and lost 9% on
thesis128), fused Adam ranged from -8% to +7%, and bf16 autocast ran 15x slower or
worse (no native bf16 on that CPU).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from facegan.config import SpeedConfig
from facegan.errors import FaceganError


@dataclass(frozen=True)
class SpeedPlan:
    bf16: bool
    channels_last: bool
    compile: bool
    cuda_graphs: bool
    fused_adam: bool
    tf32: bool
    data_on_device: bool
    threads: int

    def autocast(self, device: torch.device):
        """Where the forward passes and losses run: bf16 autocast, or as they are."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def describe(self) -> str:
        on = [name for name in ("channels_last", "compile", "cuda_graphs", "fused_adam", "tf32", "data_on_device")
              if getattr(self, name)]
        threads = torch.get_num_threads()
        return (f"{'bf16' if self.bf16 else 'fp32'}" + (f" + {', '.join(on)}" if on else "")
                + f", {threads} CPU thread{'s' if threads != 1 else ''}")


def _switch(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def resolve(speed: SpeedConfig, device: torch.device, data_bytes: int = 0) -> SpeedPlan:
    cuda = device.type == "cuda"
    compiled = _switch(speed.compile, cuda)
    graphs = _switch(speed.cuda_graphs, cuda and compiled)
    if graphs and not cuda:
        raise FaceganError("speed.cuda_graphs needs a CUDA device")
    if graphs and not compiled:
        raise FaceganError("speed.cuda_graphs needs speed.compile (CUDA graphs are made by torch.compile)")
    fits = False
    if cuda and data_bytes:
        free, _ = torch.cuda.mem_get_info(device)
        fits = data_bytes < free // 2
    return SpeedPlan(
        bf16=speed.precision == "bf16" or (speed.precision == "auto" and cuda),
        channels_last=_switch(speed.channels_last, True),
        compile=compiled,
        cuda_graphs=graphs,
        fused_adam=_switch(speed.fused_adam, cuda),
        tf32=_switch(speed.tf32, cuda),
        data_on_device=_switch(speed.data_on_device, fits),
        threads=speed.threads,
    )


def apply_globals(plan: SpeedPlan) -> None:
    if plan.threads:
        torch.set_num_threads(plan.threads)
    torch.backends.cuda.matmul.allow_tf32 = plan.tf32
    torch.backends.cudnn.allow_tf32 = plan.tf32
    torch.backends.cudnn.benchmark = True  # fixed shapes every step: let cuDNN pick its kernels once


def prepare_network(network: nn.Module, plan: SpeedPlan) -> nn.Module:
    """The callable to train with. Its parameters are the network's own, so optimisers and
    checkpoints keep using ``network`` itself (no '_orig_mod.' prefixes)."""
    if plan.channels_last:
        network.to(memory_format=torch.channels_last)
    if not plan.compile:
        return network
    return torch.compile(network, mode="reduce-overhead" if plan.cuda_graphs else None)


def adam(params, lr: float, betas: tuple[float, float], eps: float, plan: SpeedPlan) -> torch.optim.Adam:
    """Adam with its fused kernel, or PyTorch's default implementation for the device."""
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True if plan.fused_adam else None)
