"""The attribute audit: a small CNN that reads CelebA attributes off a face, so that the
make-up of a generator's faces (the share of men, of smiles, of glasses) is a number.

Trained on the train split of a prepared CelebA cache (the labels come from the
cache's attributes.npy), judged on its test split, saved as one file holding the
weights, the attribute names, the image size and the test accuracies. Several
attributes are read at once (one logit each, binary cross-entropy on each).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facegan import checkpoint
from facegan.data.cache import Cache
from facegan.errors import FaceganError

KIND = "attribute-classifier"
TRAIN, TEST = 0, 2  # CelebA's split codes in a cache


class AttributeNet(nn.Module):
    """Four stride-2 conv blocks (32 to 256 channels), global average pooling, one logit per attribute."""

    def __init__(self, attributes: int, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(4):
            out = width * 2**i
            layers += [nn.Conv2d(channels, out, 3, 2, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True),
                       nn.Conv2d(out, out, 3, 1, 1, bias=False), nn.BatchNorm2d(out), nn.ReLU(True)]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, attributes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def as_input(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 NHWC -> float NCHW in [-1, 1] at ``size`` x ``size``."""
    if not isinstance(images, torch.Tensor):
        images = torch.from_numpy(np.array(images))  # a copy: cache arrays are read-only memory maps
    x = images.permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x


def _batches(images: np.ndarray, size: int, batch_size: int):
    """``images`` as network inputs, ``batch_size`` at a time."""
    for i in range(0, len(images), batch_size):
        yield as_input(images[i : i + batch_size], size)


def train_classifier(cache: Cache, out: str | Path, names: tuple[str, ...], epochs: int = 4,
                     batch_size: int = 128, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train on the cache's train split, measure on its test split, save to ``out``."""
    labels = cache.attribute_columns(names)
    split = cache.labels.get("split")
    if split is None:
        raise FaceganError(f"{cache.folder} has no official split (split.npy)")
    train_index, test_index = np.flatnonzero(split == TRAIN), np.flatnonzero(split == TEST)
    if len(train_index) < batch_size or len(test_index) == 0:
        raise FaceganError(f"{cache.folder} has {len(train_index)} train and {len(test_index)} test images; too few")
    size = cache.size
    torch.manual_seed(seed)
    net = AttributeNet(len(names))
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = epochs * (len(train_index) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    rng = np.random.default_rng(seed)
    started, done = time.perf_counter(), 0
    net.train()
    for _ in range(epochs):
        order = rng.permutation(train_index)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            batch = np.sort(order[i : i + batch_size])
            x = as_input(cache.images[batch], size)
            flip = torch.from_numpy(rng.random(batch_size) < 0.5)
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
            loss = F.binary_cross_entropy_with_logits(net(x), torch.from_numpy(labels[batch]))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            done += 1
            if progress:
                progress(done, steps)
    recalibrate_batch_norm(net, cache.images[train_index[: 64 * batch_size]], size, batch_size)
    seconds = time.perf_counter() - started
    net.eval()
    predicted = predict(net, cache.images[test_index], size)
    accuracy = {n: float((predicted[:, j] == labels[test_index, j]).mean()) for j, n in enumerate(names)}
    result = {"kind": KIND, "attributes": list(names), "size": size, "weights": net.state_dict(),
              "test_accuracy": accuracy, "test_images": int(len(test_index)), "train_images": int(len(train_index)),
              "epochs": epochs, "seconds": round(seconds, 1), "source": str(cache.folder)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(result, Path(out))
    return {k: v for k, v in result.items() if k != "weights"}


@torch.no_grad()
def recalibrate_batch_norm(net: nn.Module, images: np.ndarray, size: int, batch_size: int = 128) -> None:
    """Set every batch norm's running statistics to the plain average over ``images``.

    The running averages kept during training trail the weights; after a short run (a
    few hundred steps) they describe an earlier network, and the evaluation-mode
    classifier then reads every face alike. One pass in training mode with a
    cumulative average (momentum None) replaces them with the statistics of the final
    weights. Nothing else changes: no gradients, no optimiser.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    was_training = net.training
    net.train()
    try:
        for x in _batches(images, size, batch_size):
            net(x)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        net.train(was_training)


@torch.no_grad()
def predict(net: nn.Module, images: np.ndarray, size: int, batch_size: int = 256) -> np.ndarray:
    """0/1 (N, attributes) decisions for uint8 NHWC images of any size."""
    parts = [(net(x) > 0).numpy() for x in _batches(images, size, batch_size)]
    return np.concatenate(parts).astype(np.float32)


class AttributeClassifier:
    """A saved classifier, ready to read attributes off images."""

    def __init__(self, path: str | Path):
        state = checkpoint.load(path)
        if state.get("kind") != KIND:
            raise FaceganError(f"{path} is not an attribute classifier (make one with facegan train-classifier)")
        self.names: list[str] = state["attributes"]
        self.size: int = state["size"]
        self.test_accuracy: dict[str, float] = state["test_accuracy"]
        self.net = AttributeNet(len(self.names))
        self.net.load_state_dict(state["weights"])
        self.net.eval()
        self.path = Path(path)

    def read(self, images: np.ndarray) -> np.ndarray:
        """0/1 decisions (N, attributes) for uint8 NHWC images."""
        return predict(self.net, images, self.size)

    @torch.no_grad()
    def probabilities(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """How sure it is of each attribute (N, attributes), in [0, 1]; ``read`` is this > 0.5."""
        return np.concatenate([torch.sigmoid(self.net(x)).numpy() for x in _batches(images, self.size, batch_size)])

    @torch.no_grad()
    def read_and_embed(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The decisions of ``read`` and, from the same pass, each image's penultimate
        features (N, 256): a face feature space learned from CelebA alone, owing nothing
        to ImageNet."""
        decisions, features = [], []
        for x in _batches(images, self.size, batch_size):
            pooled = self.net.body[:-1](x)
            decisions.append((self.net.body[-1](pooled) > 0).numpy())
            features.append(pooled.numpy())
        return np.concatenate(decisions).astype(np.float32), np.concatenate(features).astype(np.float64)
