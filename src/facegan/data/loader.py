"""Random batches from a uint8 (N, H, W, 3) array.

The order of epoch ``e`` depends only on (seed, e), so training can resume in the
middle of an epoch by skipping the batches already seen. Batches travel to the device
as uint8; only there are they scaled to the model's pixel range and flipped.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch


class BatchLoader:
    def __init__(
        self,
        images: np.ndarray,
        batch_size: int,
        seed: int,
        device: torch.device,
        pixel_range: tuple[float, float],
        mirror: bool = False,
    ):
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), not {images.dtype} {images.shape}")
        self.images, self.batch_size, self.seed = images, batch_size, seed
        self.device, self.pixel_range, self.mirror = device, pixel_range, mirror

    @property
    def steps_per_epoch(self) -> int:
        """Full batches per epoch; the last partial batch is dropped."""
        return len(self.images) // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.images))

    def epoch(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        """The batches of ``epoch`` from batch index ``start`` on, as float NCHW tensors."""
        order = self.order(epoch)
        for i in range(start, self.steps_per_epoch):
            index = np.sort(order[i * self.batch_size : (i + 1) * self.batch_size])
            yield self.to_model(torch.from_numpy(self.images[index]))

    def to_model(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC on the host -> float NCHW in the model's range on the device."""
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        lo, hi = self.pixel_range
        batch = batch * ((hi - lo) / 255.0) + lo
        if self.mirror:
            flip = torch.rand(batch.shape[0], device=self.device) < 0.5
            batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
        return batch.contiguous()
