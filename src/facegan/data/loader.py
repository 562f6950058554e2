"""Random batches from a uint8 (N, H, W, 3) array, with their labels when there are any.

The order of epoch ``e`` depends only on (seed, e), so training can resume in the
middle of an epoch by skipping the batches already seen. Batches are gathered and
flipped as uint8 and only scaled to the model's pixel range on the device. Labels
(float (N, K), for conditional models) are gathered by the very index that gathered
the images, so row i of a batch's labels always belongs to its image i.
"""

from __future__ import annotations

import warnings
from typing import Iterator, Optional

import numpy as np
import torch

Batch = tuple[torch.Tensor, Optional[torch.Tensor]]  # images, labels (None without labels)


class BatchLoader:
    """``on_device`` copies the whole set to the device (the GPU, or RAM for a CPU run)
    once and gathers batches there; ``channels_last`` hands batches over in NHWC layout;
    ``shard`` = (rank, ranks) yields only the rank-th of ``ranks`` equal slices of each
    batch, with the flips the whole batch would have had."""

    def __init__(
        self,
        images: np.ndarray,
        batch_size: int,
        seed: int,
        device: torch.device,
        pixel_range: tuple[float, float],
        mirror: bool = False,
        channels_last: bool = False,
        on_device: bool = False,
        labels: np.ndarray | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), not {images.dtype} {images.shape}")
        if labels is not None and (labels.ndim != 2 or len(labels) != len(images)):
            raise ValueError(f"labels must be (N, K) for {len(images)} images, not {labels.shape}")
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.ranks = shard  # this process's slice of every batch, of how many (facegan.train.distributed)
        self.device, self.pixel_range, self.mirror = device, pixel_range, mirror
        self.channels_last = channels_last
        self.count = len(images)
        if on_device:
            self.source = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        else:
            with warnings.catch_warnings():  # a read-only memory map: torch only ever reads it
                warnings.simplefilter("ignore", UserWarning)
                self.source = torch.from_numpy(images)
        self.labels = None if labels is None else torch.as_tensor(labels, dtype=torch.float32).to(self.source.device)

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per epoch; the last partial batch is dropped."""
        return self.count // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.count)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` from batch index ``start`` on: float NCHW images, and labels."""
        order = torch.from_numpy(self.order(epoch)).to(self.source.device)
        for i in range(start, self.steps_per_epoch):
            # sorted: a memory map is then read in file order; the order inside a batch does not matter
            yield self.batch(order[i * self.batch_size : (i + 1) * self.batch_size].sort().values)

    def batch(self, index: torch.Tensor) -> Batch:
        """Gather, flip, move, and scale one batch (uint8 NHWC -> float NCHW in the model's range).

        Mirrored images are gathered apart and put after the others, so no per-image
        select is needed; the labels follow the same reordered index. Flips and the
        layout change happen on uint8, a quarter of the bytes of float; the float
        conversion keeps the memory format and scales in place.
        """
        index, unflipped = self.arranged(index)
        batch = self.gather(self.source, index, unflipped)
        labels = None if self.labels is None else self.labels.index_select(0, index).to(self.device, non_blocking=True)
        return batch, labels

    def arranged(self, index: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        """This rank's part of a batch's index, reordered so that the images to mirror come
        last (the order every array of the batch follows), and how many come before them
        (None without mirroring)."""
        # drawn for the whole batch, on every rank alike
        flip = torch.rand(len(index), device=index.device) < 0.5 if self.mirror else None
        if self.ranks > 1:
            part = slice(self.rank * len(index) // self.ranks, (self.rank + 1) * len(index) // self.ranks)
            index, flip = index[part], None if flip is None else flip[part]
        if flip is None:
            return index, None
        return torch.cat([index[~flip], index[flip]]), int((~flip).sum())

    def gather(self, source: torch.Tensor, index: torch.Tensor, unflipped: int | None) -> torch.Tensor:
        """``source``'s images at ``index``, those after the first ``unflipped`` mirrored
        (none when it is None), on the device as float NCHW in the model's range."""
        batch = source.index_select(0, index)
        if unflipped is not None and unflipped < len(index):
            batch = torch.cat([batch[:unflipped], batch[unflipped:].flip(2)])
        batch = batch.to(self.device, non_blocking=True)
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = batch.permute(0, 3, 1, 2).contiguous(memory_format=layout)
        lo, hi = self.pixel_range
        return batch.float().mul_((hi - lo) / 255.0).add_(lo)


class PairLoader(BatchLoader):
    """Batches of (input, target) image pairs: ``inputs`` (N, h, w, 3) and ``images``
    (N, H, W, 3), row i of one belonging to row i of the other (an upscaler's low-res
    face and the photo it came from), gathered by one index and mirrored alike."""

    def __init__(self, inputs: np.ndarray, images: np.ndarray, *args, **kwargs):
        super().__init__(images, *args, **kwargs)
        if inputs.ndim != 4 or inputs.shape[3] != 3 or inputs.dtype != np.uint8 or len(inputs) != len(images):
            raise ValueError(f"inputs must be uint8 (N, h, w, 3) for {len(images)} images, not {inputs.dtype} "
                             f"{inputs.shape}")
        self.inputs = torch.from_numpy(np.ascontiguousarray(inputs)).to(self.source.device)

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index, unflipped = self.arranged(index)
        return self.gather(self.inputs, index, unflipped), self.gather(self.source, index, unflipped)
