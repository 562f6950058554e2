"""The attribute audit: a small CNN that reads CelebA attributes off a face, so that the
make-up of a generator's faces (the share of men, of smiles, of glasses) is a number.

Trained on one split of a prepared CelebA cache (the labels come from the cache's
attributes.npy; the train split by default), judged on its test split, saved as one
file holding the weights, the architecture, the attribute names, the image size and the
test accuracies. Several attributes are read at once (one logit each, binary
cross-entropy on each).

Two architectures: ``cnn`` (plain conv blocks with batch norm, the audit classifier) and
``resnet`` (residual blocks with group norm, no batch norm). Trained on the validation
split, a ``resnet`` is an *independent reader* of a conditional generator trained on
the train split: it shares no photo, no layer and no feature with the generator or its
discriminator, so a generator cannot please it with cues only its own discriminator's
kind of network reads.
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
SPLITS = {"train": 0, "val": 1}  # CelebA's split codes in a cache that a classifier may learn from
TEST = 2  # the split every classifier is judged on


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

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the last layer reads (N, 8 * width)."""
        return self.body[:-1](x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.body[-1](features)


class ResidualBlock(nn.Module):
    """Pre-activation residual block (group norm, SiLU, 3x3 convs); ``stride`` 2 halves the side."""

    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        self.branch = nn.Sequential(
            nn.GroupNorm(8, channels_in), nn.SiLU(), nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.GroupNorm(8, channels_out), nn.SiLU(), nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False))
        self.skip = (nn.Identity() if stride == 1 and channels_in == channels_out
                     else nn.Conv2d(channels_in, channels_out, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.branch(x)


class ResidualAttributeNet(nn.Module):
    """A 5x5 stride-2 stem, four stages of two residual blocks (32 to 256 channels, each
    but the first halving the side again), group norm throughout (no batch norm: its decisions do not
    depend on batch statistics), average and max pooling side by side, dropout, one
    logit per attribute."""

    def __init__(self, attributes: int, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, width, 5, 2, 2, bias=False)]
        channels = width
        for i in range(4):
            out = width * 2**i
            layers += [ResidualBlock(channels, out, 1 if i == 0 else 2), ResidualBlock(out, out, 1)]
            channels = out
        layers += [nn.GroupNorm(8, channels), nn.SiLU()]
        self.trunk = nn.Sequential(*layers)
        self.last = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * channels, attributes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Average- and max-pooled trunk features side by side (N, 16 * width)."""
        x = self.trunk(x)
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        return self.last(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"cnn": AttributeNet, "resnet": ResidualAttributeNet}


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


def shifted(x: torch.Tensor, rng: np.random.Generator, most: int) -> torch.Tensor:
    """Each image moved by up to ``most`` pixels each way (edges repeated)."""
    if most == 0:
        return x
    side = x.shape[-1]
    padded = F.pad(x, (most,) * 4, mode="replicate")
    moves = rng.integers(0, 2 * most + 1, (len(x), 2))
    return torch.stack([padded[i, :, dy : dy + side, dx : dx + side] for i, (dy, dx) in enumerate(moves)])


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """The mean of the accuracies on the positives and on the negatives (plain accuracy
    when one of them is absent): a reader that always says "no glasses" scores 50%."""
    rates = [float((predicted[labels == v] == v).mean()) for v in (1, 0) if (labels == v).any()]
    return sum(rates) / len(rates)


def positive_weights(labels: np.ndarray) -> np.ndarray:
    """Per attribute, the training images without it over those with it (1 where either
    is missing): weighting each positive so, the loss counts both sides alike and the
    decisions aim at balanced accuracy rather than at the attribute's base rate."""
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    return np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1), 1.0).astype(np.float32)


def train_classifier(cache: Cache, out: str | Path, names: tuple[str, ...], epochs: int = 4,
                     batch_size: int = 128, seed: int = 0,
                     progress: Callable[[int, int], None] | None = None, architecture: str = "cnn",
                     split: str = "train", shift: int = 0, balanced: bool = False) -> dict[str, Any]:
    """Train an ``architecture`` on the cache's ``split`` (train or val), flipping images
    and moving them by up to ``shift`` pixels, each attribute's positives weighted by
    ``positive_weights`` when ``balanced``; measure on its test split; save to ``out``.

    Balanced decisions suit a reader of conditional accuracy (a rare attribute asked
    for is read as often as its absence); plain ones suit the audit of rates (the
    share of glasses among samples, which weighting would overstate)."""
    if architecture not in ARCHITECTURES:
        raise FaceganError(f"unknown classifier architecture {architecture!r} (known: {', '.join(ARCHITECTURES)})")
    if split not in SPLITS:
        raise FaceganError(f"a classifier learns from the train or val split, not {split!r} (it is judged on test)")
    if not 0 <= shift < cache.size // 2:
        raise FaceganError(f"the shift must be 0 to {cache.size // 2 - 1} pixels, not {shift}")
    labels = cache.attribute_columns(names)
    codes = cache.labels.get("split")
    if codes is None:
        raise FaceganError(f"{cache.folder} has no official split (split.npy)")
    train_index, test_index = np.flatnonzero(codes == SPLITS[split]), np.flatnonzero(codes == TEST)
    if len(train_index) < batch_size or len(test_index) == 0:
        raise FaceganError(f"{cache.folder} has {len(train_index)} {split} and {len(test_index)} test images; too few")
    size = cache.size
    weights = torch.from_numpy(positive_weights(labels[train_index])) if balanced else None
    torch.manual_seed(seed)
    net = ARCHITECTURES[architecture](len(names))
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
            x = shifted(torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x), rng, shift)
            loss = F.binary_cross_entropy_with_logits(net(x), torch.from_numpy(labels[batch]), pos_weight=weights)
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
    truth = labels[test_index]
    accuracy = {n: float((predicted[:, j] == truth[:, j]).mean()) for j, n in enumerate(names)}
    accuracy_balanced = {n: balanced_accuracy(predicted[:, j], truth[:, j]) for j, n in enumerate(names)}
    result = {"kind": KIND, "architecture": architecture, "attributes": list(names), "size": size,
              "weights": net.state_dict(), "test_accuracy": accuracy, "test_balanced_accuracy": accuracy_balanced,
              "test_images": int(len(test_index)), "train_split": split, "train_images": int(len(train_index)),
              "epochs": epochs, "shift": shift, "balanced": balanced, "seconds": round(seconds, 1), "source": str(cache.folder)}
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
    if not norms:
        return
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
        self.architecture: str = state.get("architecture", "cnn")  # files from before there were two
        self.train_split: str = state.get("train_split", "train")
        self.test_balanced_accuracy: dict[str, float] = state.get("test_balanced_accuracy", {})
        self.net = ARCHITECTURES[self.architecture](len(self.names))
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
        features (N, its width): a face feature space learned from CelebA alone, owing nothing
        to ImageNet."""
        decisions, features = [], []
        for x in _batches(images, self.size, batch_size):
            pooled = self.net.features(x)
            decisions.append((self.net.head(pooled) > 0).numpy())
            features.append(pooled.numpy())
        return np.concatenate(decisions).astype(np.float32), np.concatenate(features).astype(np.float64)
