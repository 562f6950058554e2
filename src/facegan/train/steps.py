"""The two ways to take one GAN training step, and the objective both minimise.

Both steps return detached per-step figures (losses, mean D(real), mean D(fake)) as
tensors on the device, so the caller decides when to pay for a host synchronisation.

The discriminators return logits. The losses (``Objective.loss``):

- ``nonsaturating`` (default): D minimises softplus(-D(x)) + softplus(D(G(z))), G
  minimises softplus(-D(G(z))). This is exactly the thesis's sigmoid + binary
  cross-entropy with "real" labels for G's fakes (``bce``), computed from logits
  without the cliff at saturated outputs;
- ``minimax``: the same D, but G minimises -softplus(D(G(z))) = log(1 - D(G(z))), the
  game as first written (Goodfellow et al. 2014). Its gradient vanishes when D rejects
  G's samples confidently, which is why nobody trains with it; it is here to show that;
- ``hinge``: D minimises relu(1 - D(x)) + relu(1 + D(G(z))), G minimises -D(G(z))
  (Lim & Ye 2017; SN-GAN, BigGAN).

R1 (Mescheder et al. 2018): gamma/2 times the squared gradient norm of D's output
with respect to real images, added to D's loss; lazily, every ``r1_every`` steps,
scaled by ``r1_every`` (StyleGAN2). DiffAugment: D sees real and fake images only
through ``facegan.train.augment``.

Conditional networks (a CGAN) get the real batch's labels: D judges each real image
with its own labels, G makes one fake for each of the same labels, and D judges each
fake with the labels it was made for. The fakes' labels thus follow the training
data's joint distribution.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from facegan.train import augment


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass(frozen=True)
class Objective:
    loss: str = "nonsaturating"
    r1_gamma: float = 0.0
    r1_every: int = 16
    augment: tuple[str, ...] = ()
    output_range: tuple[float, float] = (-1.0, 1.0)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.loss == "hinge":
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        return bce(real_logits, 1.0) + bce(fake_logits, 0.0)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.loss == "hinge":
            return -fake_logits.mean()
        if self.loss == "minimax":
            return -F.softplus(fake_logits).mean()
        return bce(fake_logits, 1.0)

    def view(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown of ``images``: augmented, when augmentation is on."""
        return augment.augment(images, self.augment, self.output_range)

    def r1_due(self, step: int) -> bool:
        return self.r1_gamma > 0 and step % self.r1_every == 0

    def real_logits_and_r1(self, discriminator: nn.Module, real: torch.Tensor, step: int,
                           autocast: Callable[[], ContextManager],
                           labels: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits of the real batch, and the (lazy, scaled) R1 penalty when it is due."""
        if not self.r1_due(step):
            with autocast():
                return discriminator(self.view(real), *labels).float(), None
        real = real.detach().requires_grad_(True)
        with autocast():
            logits = discriminator(self.view(real), *labels).float()
        (gradient,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = gradient.float().square().sum(dim=(1, 2, 3)).mean() * (self.r1_gamma / 2) * self.r1_every
        return logits, penalty


def _figures(loss_g, loss_d, real_logits, fake_logits, r1) -> dict[str, torch.Tensor]:
    figures = {
        "loss_g": loss_g.detach(),
        "loss_d": loss_d.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
    }
    if r1 is not None:
        figures["r1"] = r1.detach()
    return figures


def thesis_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    objective: Objective = Objective(),
    step: int = 0,
    autocast: Callable[[], ContextManager] = nullcontext,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The thesis's step: one forward pass, both losses from it, both networks updated.

    As with two Keras GradientTapes: G's gradients come from G's loss only and D's from
    D's loss only, both taken at the same weights before either update.
    """
    y = () if labels is None else (labels,)
    with autocast():
        fake_logits = discriminator(objective.view(generator(z, *y)), *y).float()
    real_logits, r1 = objective.real_logits_and_r1(discriminator, real, step, autocast, y)
    loss_d = objective.d_loss(real_logits, fake_logits)
    loss_g = objective.g_loss(fake_logits)
    g_params = [p for p in generator.parameters() if p.requires_grad]
    d_params = [p for p in discriminator.parameters() if p.requires_grad]
    g_grads = torch.autograd.grad(loss_g, g_params, retain_graph=True)
    d_grads = torch.autograd.grad(loss_d if r1 is None else loss_d + r1, d_params)
    for params, grads in ((g_params, g_grads), (d_params, d_grads)):
        for p, g in zip(params, grads):
            p.grad = g
    g_optimizer.step()
    d_optimizer.step()
    return _figures(loss_g, loss_d, real_logits, fake_logits, r1)


def alternating_step(
    generator: nn.Module,
    discriminator: nn.Module,
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    objective: Objective = Objective(),
    step: int = 0,
    autocast: Callable[[], ContextManager] = nullcontext,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The classic DCGAN step: update D on real and (detached) fake, then G against the new D."""
    y = () if labels is None else (labels,)
    with autocast():
        fake = generator(z, *y)
    real_logits, r1 = objective.real_logits_and_r1(discriminator, real, step, autocast, y)
    with autocast():
        fake_logits = discriminator(objective.view(fake.detach()), *y).float()
    loss_d = objective.d_loss(real_logits, fake_logits)
    d_optimizer.zero_grad(set_to_none=True)
    (loss_d if r1 is None else loss_d + r1).backward()
    d_optimizer.step()

    discriminator.requires_grad_(False)  # G's step needs gradients through D, not for it
    with autocast():
        loss_g = objective.g_loss(discriminator(objective.view(fake), *y).float())
    g_optimizer.zero_grad(set_to_none=True)
    loss_g.backward()
    g_optimizer.step()
    discriminator.requires_grad_(True)
    return _figures(loss_g, loss_d, real_logits, fake_logits, r1)


STEPS = {"thesis": thesis_step, "alternating": alternating_step}
