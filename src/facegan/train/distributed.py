"""Training one run in several processes: data parallel under ``torchrun``.

``torchrun --nproc-per-node N -m facegan train ...`` starts N copies of the command;
each reads its place (rank, world size) from the environment torchrun sets and joins
one process group (NCCL between GPUs, gloo between CPU processes). Then:

- ``train.batch_size`` stays the global batch: each rank trains on its own slice of
  every batch of the epoch's one order (facegan.data.loader), and on the same slice of
  the step's latents, drawn whole from the random state every rank shares.
- Before every optimiser step the gradients are averaged over the ranks (a hook on
  each optimiser, as stylegan2-ada-pytorch does instead of wrapping the networks in
  DistributedDataParallel): each rank's loss is a mean over its slice, so the average
  is the gradient of the global batch, and it works for any step, R1's double backward
  and the attribute head included. The weights start equal (same seed, or the same
  checkpoint) and so stay equal on every rank.
- What is random per image (flips, DiffAugment, dropout) is drawn inside a random
  state forked per (step, rank), so ranks do not repeat each other's choices while the
  shared state, the one a checkpoint saves, advances alike on every rank.
- Batch norm normalises by the statistics of the whole batch, over every rank:
  PyTorch's SyncBatchNorm on GPUs, ``CrossRankBatchNorm2d`` between CPU processes
  (SyncBatchNorm refuses CPU tensors). So two processes compute what one would, up to
  the order of floating-point sums.
- Rank 0 alone writes the run directory: config, metrics, grids, checkpoints,
  evaluations. Every step the ranks agree on whether to stop (a signal to any rank,
  the time limit) and whether a checkpoint is due, so all stop after the same step.
- A checkpoint records the world size; resuming at another is refused.
- When a rank dies, the others' next collective fails: each stops with one line, and
  rank 0, if the failure came between steps (every rank then holds the same whole
  state), saves a checkpoint first, so the run resumes from the step where the peer
  died. A rank that stops answering without dying (SIGSTOP, a hang) is found by a
  heartbeat (``Heartbeat``) within ``PEER_TIMEOUT_S`` (60 s; $FACEGAN_PEER_TIMEOUT),
  not by the 60-minute collective timeout.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from facegan.errors import FaceganError

TIMEOUT = timedelta(minutes=60)  # ranks wait this long for rank 0's evaluations and checkpoints
HEARTBEAT_S = 2.0  # each rank says it is alive this often
PEER_TIMEOUT_S = float(os.environ.get("FACEGAN_PEER_TIMEOUT", "60"))  # a rank silent this long has stalled


def lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another rank went away."""
    text = str(error)
    return isinstance(error, dist.DistError) or (
        isinstance(error, RuntimeError) and any(s in text for s in ("gloo", "Connection closed", "Connection reset",
                                                                    "NCCL", "Broken pipe")))


class Heartbeat:
    """Every rank counts up a key in torchrun's store every HEARTBEAT_S seconds, from a
    thread of its own (so it beats through long evaluations and checkpoints), and watches
    the others' counts: a rank whose count has not moved for PEER_TIMEOUT_S has stalled
    (stopped, or stuck), and ``stalled(rank, seconds)`` is called once, from that thread.
    A collective waiting on a stalled rank would wait the whole 60-minute timeout."""

    def __init__(self, world: World, stalled):
        self.world, self.stalled = world, stalled
        self.stopped = threading.Event()
        self.thread = None
        if world.several and os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT"):
            self.thread = threading.Thread(target=self._beat, name="facegan-heartbeat", daemon=True)
            self.thread.start()

    def _beat(self) -> None:
        try:
            store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                                  timeout=timedelta(seconds=5), wait_for_workers=False)
        except (RuntimeError, ValueError, OSError):
            return  # no store to beat in: the collectives' own timeout remains
        key = "facegan/heartbeat/{}"
        seen = {r: (-1, time.monotonic()) for r in range(self.world.size) if r != self.world.rank}
        while not self.stopped.wait(HEARTBEAT_S):
            try:
                store.add(key.format(self.world.rank), 1)
                for rank, (count, since) in seen.items():
                    now = store.add(key.format(rank), 0)
                    if now != count:
                        seen[rank] = (now, time.monotonic())
                    elif time.monotonic() - since > PEER_TIMEOUT_S:
                        self.stalled(rank, time.monotonic() - since)
                        return
            except (RuntimeError, OSError):
                return  # the store went away: the run is ending

    def stop(self) -> None:
        """End the thread and wait for it: its store client must be gone before the process
        exits (a C++ client destroyed at exit by a thread still using it aborts the process)."""
        self.stopped.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The rank that writes the run directory and reports."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.size > 1

    @classmethod
    def from_environment(cls) -> "World":
        """Where torchrun put this process (one process alone without it)."""
        try:
            size = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            raise FaceganError("WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers (torchrun sets them)") from None
        if not (size >= 1 and 0 <= rank < size):
            raise FaceganError(f"RANK {rank} is not a place in a world of {size} processes")
        return cls(rank, size, local)


ALONE = World()


def device_for(world: World, device: torch.device) -> torch.device:
    """Each rank on its own GPU (by local rank); CPU ranks share the CPU."""
    if device.type == "cuda" and world.several:
        return torch.device("cuda", world.local_rank)
    return device


def join(world: World, device: torch.device) -> None:
    """Join the process group (rendezvous from torchrun's environment)."""
    if world.several and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT,
                                **({"device_id": device} if device.type == "cuda" else {}))


def leave(world: World) -> None:
    if world.several and dist.is_initialized():
        dist.destroy_process_group()


def meet(world: World) -> None:
    """Wait here until every rank is here."""
    if world.several:
        dist.barrier()


def check_batch(world: World, batch_size: int) -> None:
    """Refuse a global batch that does not split evenly over the ranks."""
    if batch_size % world.size:
        raise FaceganError(f"train.batch_size {batch_size} does not split evenly over {world.size} processes")


def average_gradients_before_steps(optimizer: torch.optim.Optimizer, world: World) -> None:
    """Make ``optimizer`` average its parameters' gradients over the ranks before each step."""
    if not world.several:
        return
    params = [p for group in optimizer.param_groups for p in group["params"]]

    def average(opt, args, kwargs):
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world.size
        offset = 0
        for p, g in zip(params, grads):
            n = g.numel()
            value = flat[offset : offset + n].view_as(g)
            if p.grad is None:
                p.grad = value.clone()
            else:
                p.grad.copy_(value)
            offset += n

    optimizer.register_step_pre_hook(average)


class SumAcrossRanks(torch.autograd.Function):
    """The sum of a tensor over every rank, differentiable: its gradient is the sum of
    every rank's gradient (what torch.distributed.nn's deprecated all_reduce did)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        return SumAcrossRanks.apply(gradient)


class CrossRankBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the batch of every rank, for CPU processes: each rank's channel
    sums, sums of squares and count are added up across ranks (differentiably, so the
    backward pass adds up their gradients too), then it normalises as one batch would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        channels, dtype, x = x.shape[1], x.dtype, x.float()  # statistics in fp32, also under bf16 autocast
        count = torch.full((1,), x.numel() / channels, dtype=x.dtype, device=x.device)
        local = torch.cat([x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)), count])
        total = SumAcrossRanks.apply(local)
        n = total[-1]
        mean = total[:channels] / n
        var = (total[channels : 2 * channels] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * n / (n - 1), momentum)
        y = (x - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(dtype)


def share_batch_norm(module: nn.Module, world: World, device: torch.device) -> nn.Module:
    """Batch norm layers of ``module`` made to normalise over every rank's slice."""
    if not world.several:
        return module
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            shared = CrossRankBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats)
            shared.load_state_dict(child.state_dict())
            setattr(module, name, shared)
        else:
            share_batch_norm(child, world, device)
    return module


def same_weights(module: torch.nn.Module, world: World) -> None:
    """Give every rank rank 0's parameters and buffers."""
    if world.several:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def whole_batch(part: torch.Tensor, world: World) -> torch.Tensor:
    """Every rank's ``part`` of a batch (equal shapes), in rank order, on every rank; no gradient."""
    if not world.several:
        return part
    parts = [torch.empty_like(part) for _ in range(world.size)]
    dist.all_gather(parts, part.detach().contiguous())
    return torch.cat(parts)


def agree(world: World, flags: list[bool], device: torch.device) -> list[bool]:
    """Each flag true if it is true on any rank."""
    if not world.several:
        return flags
    votes = torch.tensor([int(f) for f in flags], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return [bool(v) for v in votes.tolist()]


@contextmanager
def own_randomness(world: World, seed: int, step: int, device: torch.device) -> Iterator[None]:
    """Draw inside from a random state of this (step, rank) alone; the shared state is
    untouched. Alone, a no-op: one process draws from the shared state as always."""
    if not world.several:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(np.random.SeedSequence([seed, step, world.rank]).generate_state(1)[0]))
        yield
