"""What conditional networks of every family share: labels as signs, batch norm whose
scale and shift come from the labels (the generator's side), and the projection term
(the discriminator's side).

Labels are 0/1 floats of shape (N, conditions); the networks see them as -1/+1, so that
'absent' is a signal too.
"""

from __future__ import annotations

import torch
from torch import nn


def signs(labels: torch.Tensor | None) -> torch.Tensor:
    """0/1 labels as -1/+1."""
    if labels is None:
        raise ValueError("a conditional network needs labels")
    return labels * 2 - 1


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without its own scale and shift; they come from the labels instead:
    y = norm(x) * (1 + gamma(labels)) + beta(labels) (de Vries et al. 2017)."""

    def __init__(self, channels: int, conditions: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Linear(conditions, channels)
        self.beta = nn.Linear(conditions, channels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        s = signs(labels)
        return self.norm(x) * (1 + self.gamma(s))[:, :, None, None] + self.beta(s)[:, :, None, None]


def run_layers(layers: nn.Sequential, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Apply ``layers`` in order, giving the labels to those that take them."""
    for layer in layers:
        x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
    return x


def projection(embed: nn.Linear, labels: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """The projection discriminator's term (Miyato & Koyama 2018) for binary attributes:
    sum_j s_j <v_j, phi(x)>, one inner product per attribute, of an image's summed
    features phi(x) (``pooled``, (N, channels)) with the embedding of its labels."""
    return (embed(signs(labels)) * pooled).sum(dim=1)
