"""The fast path: turns the [speed] settings into concrete choices for one device, and
applies them to the networks, the optimisers and the data.

"auto" means what measured fastest on that kind of device (benchmarks/train_speed.py,
docs/benchmarks.md), read off the device at start (``detect``) and said in the first
log line:

- CUDA: everything on (bf16 where the GPU has it, compute capability 8.0 and up).
- A CPU: channels_last (1.22x on the demo model, 1.24x on dcgan64 on an AVX2 CPU), and
  bf16 autocast where the CPU runs bf16 natively (AMX or AVX512-BF16) and the model is
  large enough to gain (``CPU_BF16_MIN_GFLOP``, counted by ``models.gflop_per_image``):
  on an AVX512-BF16 CPU bf16 trained fast64 1.12x, faces64 1.33-1.57x, faces128 1.73x and
  thesis128 2.0x as fast (AMX: thesis128 1.7-1.8x), the demo model (0.012 GFLOP per
  image) 0.87x on two threads; without native bf16 it runs 15x slower. bf16 training
  ends as good as fp32 (benchmarks/precision_check.py, faces64, three seeds each,
  docs/benchmarks.md). torch.compile gained 2-19% after 25-40 s of compiling (and lost
  9% on thesis128), fused Adam ranged from -8% to +7%: both stay off on a CPU.
"""

from __future__ import annotations

import platform
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from facegan import models
from facegan.config import ModelConfig, SpeedConfig
from facegan.errors import FaceganError, FaceganWarning


@dataclass(frozen=True)
class Hardware:
    """What a device offers for fast numerics."""

    kind: str  # "cpu" or "cuda"
    name: str  # the CPU model or the GPU's name
    capability: str  # torch's CPU capability (AVX512, AVX2, ...) or the CUDA compute capability (sm_90)
    bf16: str  # how bf16 runs: "amx", "avx512_bf16", "cuda", or "" (emulated, slow)

    def describe(self) -> str:
        native = {"amx": "AMX", "avx512_bf16": "AVX512-BF16, no AMX", "cuda": "bf16", "": "no native bf16"}[self.bf16]
        return f"{self.name} ({self.capability}, {native})"


def _cpu_flags() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags (Linux's /proc/cpuinfo; elsewhere what
    Python's platform module says, and no flags)."""
    fallback = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return fallback, set()
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                fallback)
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return name, set(flags)


def detect(device: torch.device) -> Hardware:
    """Read what ``device`` offers."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return Hardware("cuda", torch.cuda.get_device_name(device), f"sm_{major}{minor}", "cuda" if major >= 8 else "")
    name, flags = _cpu_flags()
    amx = bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()) or "amx_bf16" in flags
    bf16 = "amx" if amx else "avx512_bf16" if "avx512_bf16" in flags else ""
    return Hardware("cpu", name, torch.backends.cpu.get_cpu_capability(), bf16)


CPU_BF16_MIN_GFLOP = 0.05  # smaller models (demo: 0.012 GFLOP per image) ran 0.87x in bf16 on two threads


def auto_bf16(hardware: Hardware, model: ModelConfig | None = None) -> tuple[bool, str]:
    """Whether "auto" trains in bf16 on ``hardware``, and why. On a CPU the ``model``'s
    size counts too: with too little arithmetic per image, bf16's conversions cost more
    than its faster multiplications save."""
    if hardware.kind == "cuda" and hardware.bf16:
        return True, "bf16 autocast: native on this GPU"
    if hardware.kind == "cuda":
        return False, "fp32: this GPU has no native bf16"
    if not hardware.bf16:
        return False, "fp32: bf16 without native support measured 15x slower"
    gflop = models.gflop_per_image(model) if model is not None else None
    if gflop is not None and gflop < CPU_BF16_MIN_GFLOP:
        return False, (f"fp32: bf16 is native here, but a model this small ({gflop:.3f} GFLOP per image, under "
                       f"{CPU_BF16_MIN_GFLOP}) gains nothing from it")
    size = f" for a model of {gflop:.2f} GFLOP per image" if gflop is not None else ""
    return True, f"bf16 autocast: native on this CPU, 1.1-2.0x fp32's speed{size}"


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
    hardware: Hardware | None = None
    reason: str = ""  # why precision is what it is, when "auto" chose it

    def autocast(self, device: torch.device):
        """Where the forward passes and losses run: bf16 autocast, or as they are."""
        if not self.bf16:
            return nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    def describe(self) -> str:
        on = [name for name in ("channels_last", "compile", "cuda_graphs", "fused_adam", "tf32", "data_on_device")
              if getattr(self, name)]
        threads = torch.get_num_threads()
        why = f"; auto on {self.hardware.describe()}: {self.reason}" if self.reason and self.hardware else ""
        return (f"{'bf16' if self.bf16 else 'fp32'}" + (f" + {', '.join(on)}" if on else "")
                + f", {threads} CPU thread{'s' if threads != 1 else ''}{why}")


def _switch(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def resolve(speed: SpeedConfig, device: torch.device, data_bytes: int = 0,
            hardware: Hardware | None = None, model: ModelConfig | None = None) -> SpeedPlan:
    """The concrete choices for ``device`` (described by ``hardware``, else detected) and
    the ``model`` to train there (its size decides bf16 on a CPU; None: not asked)."""
    cuda = device.type == "cuda"
    hardware = hardware or detect(device)
    bf16, reason = auto_bf16(hardware, model) if speed.precision == "auto" else (speed.precision == "bf16", "")
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
        bf16=bf16,
        channels_last=_switch(speed.channels_last, True),
        compile=compiled,
        cuda_graphs=graphs,
        fused_adam=_switch(speed.fused_adam, cuda),
        tf32=_switch(speed.tf32, cuda),
        data_on_device=_switch(speed.data_on_device, fits),
        threads=speed.threads,
        hardware=hardware,
        reason=reason,
    )


def apply_globals(plan: SpeedPlan) -> None:
    if plan.threads:
        torch.set_num_threads(plan.threads)
    torch.backends.cuda.matmul.allow_tf32 = plan.tf32
    torch.backends.cudnn.allow_tf32 = plan.tf32
    torch.backends.cudnn.benchmark = True  # fixed shapes every step: let cuDNN pick its kernels once


def prepare_network(network: nn.Module, plan: SpeedPlan, backend: str = "inductor") -> nn.Module:
    """The callable to train with. Its parameters are the network's own, so optimisers and
    checkpoints keep using ``network`` itself (no '_orig_mod.' prefixes)."""
    if plan.channels_last:
        network.to(memory_format=torch.channels_last)
    if not plan.compile:
        return network
    return CompiledOrEager(network, torch.compile(network, backend=backend,
                                                  mode="reduce-overhead" if plan.cuda_graphs else None))


def _compile_error(error: BaseException) -> bool:
    import torch._dynamo.exc
    import torch._inductor.exc

    return isinstance(error, (torch._dynamo.exc.TorchDynamoException, torch._inductor.exc.InductorError))


class CompiledOrEager(nn.Module):
    """A compiled network that, if compiling it fails, warns once (one line) and runs the
    network as it is from then on: a failed compile never stops a run."""

    def __init__(self, network: nn.Module, compiled: nn.Module):
        super().__init__()
        self.network = network
        self.__dict__["compiled"] = compiled  # the same parameters: not registered twice
        self.failed: str | None = None  # why compiling failed, once it has

    def forward(self, *args, **kwargs):
        if self.failed is None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as e:
                if not _compile_error(e):
                    raise
                cause = getattr(e, "inner_exception", None) or e.__cause__ or e  # the backend's own error
                first = (str(cause).strip().splitlines() or [""])[0][:200]
                self.failed = f"{type(cause).__name__}: {first}"
                warnings.warn(f"torch.compile failed for the {type(self.network).__name__} ({self.failed}); "
                              "training goes on without compiling it", FaceganWarning, stacklevel=2)
        return self.network(*args, **kwargs)


def adam(params, lr: float, betas: tuple[float, float], eps: float, plan: SpeedPlan) -> torch.optim.Adam:
    """Adam with its fused kernel, or PyTorch's default implementation for the device."""
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=True if plan.fused_adam else None)
