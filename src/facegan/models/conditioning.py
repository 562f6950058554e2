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


def from_unconditional(network: nn.Module, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights that make the conditional ``network`` draw what the unconditional one
    whose state dict is ``weights`` draws, whatever its labels: each conditional batch
    norm gets the plain one's statistics, scale and shift with the label terms at zero
    (gamma's bias = scale - 1, beta's bias = shift), and a layer reading z with the
    labels appended takes z's weights with zeros for the labels. Training then learns
    the label terms from there (a conditional model transferred from an unconditional
    one). Raises KeyError or ValueError where the two are not the same network."""
    mapped: dict[str, torch.Tensor] = {}
    for name, module in network.named_modules():
        if isinstance(module, ConditionalBatchNorm2d):
            prefix = f"{name}." if name else ""
            scale, shift = weights[prefix + "weight"], weights[prefix + "bias"]
            mapped[prefix + "gamma.weight"] = torch.zeros_like(module.gamma.weight)
            mapped[prefix + "gamma.bias"] = scale - 1
            mapped[prefix + "beta.weight"] = torch.zeros_like(module.beta.weight)
            mapped[prefix + "beta.bias"] = shift
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                mapped[prefix + "norm." + buffer] = weights[prefix + buffer]
    for key, own in network.state_dict().items():
        if key in mapped:
            continue
        source = weights[key]
        if source.shape != own.shape:  # z's weights in a layer that also reads the labels
            grown = [d for d in range(own.dim()) if own.shape[d] != source.shape[d]]
            if source.dim() != own.dim() or len(grown) != 1 or source.shape[grown[0]] > own.shape[grown[0]]:
                raise ValueError(f"{key}: {tuple(source.shape)} does not fit {tuple(own.shape)}")
            widened = torch.zeros_like(own)
            widened.narrow(grown[0], 0, source.shape[grown[0]]).copy_(source)
            source = widened
        mapped[key] = source
    return mapped
