"""A perceptual distance between images, offline: how different two pictures look, in
the features of an ImageNet network rather than in raw pixels.

LPIPS (Zhang et al. 2018) showed that distances between deep features, each feature
map scaled to unit length at every position, follow human judgements of similarity far
better than pixel distances, even without the small learned weights LPIPS adds on
top. This is that unweighted form, on the four feature maps of the frozen
EfficientNet-Lite0 that ships with facegan (``facegan.models.efficientnet``): for each
map, the squared difference of the unit-normalised features, averaged over positions
and summed over channels; then averaged over the four maps. 0 for identical images;
figures are comparable only with each other, not with published LPIPS values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facegan.models import efficientnet


class PerceptualDistance(nn.Module):
    """``distance(a, b)``: one value per pair of images (N, 3, H, W) in ``pixel_range``."""

    def __init__(self, pixel_range: tuple[float, float] = (-1.0, 1.0), side: int = 128):
        super().__init__()
        self.network = efficientnet.pretrained()
        self.pixel_range, self.side = pixel_range, side

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        lo, hi = self.pixel_range
        x = (images - lo) / (hi - lo) * 2 - 1  # the network reads [-1, 1]
        if x.shape[-1] != self.side:
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False, antialias=True)
        return [F.normalize(f, dim=1, eps=1e-10) for f in self.network.features(x)]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.between(self.features(a), self.features(b))

    @staticmethod
    def between(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
        """The distance between two images' ``features`` (b may be one image's, broadcast)."""
        return torch.stack([(x - y).square().sum(dim=1).mean(dim=(1, 2)) for x, y in zip(a, b)]).mean(dim=0)
