"""The two ways to take one GAN training step, with the thesis's binary cross-entropy.

Both return detached per-step figures (losses, mean D(real), mean D(fake)) as tensors
on the device, so the caller decides when to pay for a host synchronisation.

The discriminators return logits; ``bce`` applies the sigmoid inside the loss
(``binary_cross_entropy_with_logits``), which is the thesis's sigmoid + BCE without
its numerical cliff at saturated outputs.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _figures(loss_g, loss_d, real_logits, fake_logits) -> dict[str, torch.Tensor]:
    return {
        "loss_g": loss_g.detach(),
        "loss_d": loss_d.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
    }


def thesis_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    autocast: Callable[[], ContextManager] = nullcontext,
) -> dict[str, torch.Tensor]:
    """The thesis's step: one forward pass, both losses from it, both networks updated.

    As with two Keras GradientTapes: G's gradients come from G's loss only and D's from
    D's loss only, both taken at the same weights before either update.
    """
    with autocast():
        fake = generator(z)
        fake_logits = discriminator(fake).float()
        real_logits = discriminator(real).float()
        loss_d = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
        loss_g = bce(fake_logits, 1.0)
    g_params = [p for p in generator.parameters() if p.requires_grad]
    d_params = [p for p in discriminator.parameters() if p.requires_grad]
    g_grads = torch.autograd.grad(loss_g, g_params, retain_graph=True)
    d_grads = torch.autograd.grad(loss_d, d_params)
    for params, grads in ((g_params, g_grads), (d_params, d_grads)):
        for p, g in zip(params, grads):
            p.grad = g
    g_optimizer.step()
    d_optimizer.step()
    return _figures(loss_g, loss_d, real_logits, fake_logits)


def alternating_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    autocast: Callable[[], ContextManager] = nullcontext,
) -> dict[str, torch.Tensor]:
    """The classic DCGAN step: update D on real and (detached) fake, then G against the new D."""
    with autocast():
        fake = generator(z)
        real_logits = discriminator(real).float()
        fake_logits = discriminator(fake.detach()).float()
        loss_d = bce(real_logits, 1.0) + bce(fake_logits, 0.0)
    d_optimizer.zero_grad(set_to_none=True)
    loss_d.backward()
    d_optimizer.step()

    discriminator.requires_grad_(False)  # G's step needs gradients through D, not for it
    with autocast():
        loss_g = bce(discriminator(fake).float(), 1.0)
    g_optimizer.zero_grad(set_to_none=True)
    loss_g.backward()
    g_optimizer.step()
    discriminator.requires_grad_(True)
    return _figures(loss_g, loss_d, real_logits, fake_logits)


STEPS = {"thesis": thesis_step, "alternating": alternating_step}
