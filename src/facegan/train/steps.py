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
scaled by ``r1_every`` (StyleGAN2). Path-length regularisation (StyleGAN2, generators
with a mapping network): the family's path-length penalty of the generator on half the
step's latents, times ``pl_weight``, every PL_EVERY steps, scaled by PL_EVERY. R1 is
multiplied by ``r1_scale()``, which a growing family sets (its D at a smaller stage). DiffAugment: D
sees real and fake images only through ``facegan.train.augment``.

Conditional networks (a CGAN) get the real batch's labels: D judges each real image
with its own labels, G makes one fake for each of the same labels, and D judges each
fake with the labels it was made for. The fakes' labels thus follow the training
data's joint distribution.

The attribute loss (AC-GAN, Odena et al. 2017; ``attribute_loss`` > 0 needs a D with an
attribute head): D's head learns to read the real images' attributes (its binary
cross-entropy, ``attr_real``, joins D's loss), and G is penalised when the head does
not read in its fakes the attributes they were made for (``attr_fake``, joins G's
loss). The head learns from real images only, so G cannot teach it to accept fakes
that are merely easy to classify. The projection alone rewards G for attributes only
as far as D's single realism score does; the head's error is a direct, per-attribute
gradient. The head reads the images as they are, not DiffAugment's views: shown
those, it barely learned in 1,500 steps (docs/experiments.md, round 6), and it needs
no guard against memorising, since it never judges realism.

The twin reader (TAC-GAN, Gong et al. 2019; ``attribute_twin``): G pays the head's
error, which is lowest for faces that are easy to read, so it is paid for one
unmistakable face per label set (AC-GAN's known bias: it lowers the entropy of the
labels given the face below the data's; docs/experiments.md, round 18). A second reader
on the same features learns to read, from G's fakes (detached), the labels they were
made for (``attr_twin``, joins D's loss), and G's attribute term becomes the head's
error minus the twin's (times ``attribute_twin``, 1 in TAC-GAN): reading its fakes
easily then earns G only as much as it does for photos, and the term is zero where the
fakes' labels given the face are as uncertain as the photos'. A share below 1 keeps
part of the push towards faces easy to read; the share may differ per attribute
(``twin_attributes``: the twin only for the labels photos leave uncertain).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from facegan.train import augment

PL_EVERY = 4  # path-length regularisation every this many steps (lazy, as StyleGAN2)
# R1 on a CPU: its steps run D's real pass in fp32 even under bf16 autocast. PyTorch
# 2.13's oneDNN (3.12) dies with SIGFPE on AMX CPUs in the bf16 double backward of a 1x1
# convolution from 3 channels at 32 x 128 x 128 (StyleGAN2's and ProGAN's from_rgb at
# 128 px); fp32 is also the more precise gradient penalty. Other steps keep bf16.


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass(frozen=True)
class Loss:
    """D's loss of (real logits, fake logits) and G's of the fake logits."""

    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return bce(real, 1.0) + bce(fake, 0.0)


LOSSES: dict[str, Loss] = {
    "nonsaturating": Loss(_bce_d, lambda fake: bce(fake, 1.0)),
    "minimax": Loss(_bce_d, lambda fake: -F.softplus(fake).mean()),
    "hinge": Loss(lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(), lambda fake: -fake.mean()),
}


@dataclass(frozen=True)
class Objective:
    loss: str = "nonsaturating"
    r1_gamma: float = 0.0
    r1_every: int = 16
    augment: tuple[str, ...] = ()
    output_range: tuple[float, float] = (-1.0, 1.0)
    attribute_loss: float = 0.0
    pl_weight: float = 0.0
    mode_seeking: float = 0.0
    attribute_twin: float | tuple[float, ...] = 0.0  # the share of the twin's error G's term subtracts: one, or one per attribute
    r1_scale: Callable[[], float] = lambda: 1.0  # R1's factor now (a growing D judges smaller images)
    path_length_penalty: Callable[[torch.Tensor], torch.Tensor] | None = None  # G's, for pl_weight (a mapping network)

    def d_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.loss].d(real_logits, fake_logits)

    def g_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return LOSSES[self.loss].g(fake_logits)

    def view(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown of ``images``: augmented, when augmentation is on."""
        return augment.augment(images, self.augment, self.output_range)

    def r1_due(self, step: int) -> bool:
        return self.r1_gamma > 0 and step % self.r1_every == 0

    def judge(self, discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None,
              read: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's logits of ``images`` as D is shown them (augmented), and, when the attribute
        loss is on and ``read`` is asked, its head's attribute logits of the images as they
        are (else None). Call it inside the step's autocast."""
        if self.attribute_loss == 0 or not read:
            return discriminator(self.view(images), labels).float(), None
        if not self.augment:  # D is shown the images as they are: one pass gives both
            logits, attributes = discriminator(images, labels, attributes=True)
            return logits.float(), attributes.float()
        logits = discriminator(self.view(images), labels).float()
        return logits, discriminator(images, labels, attributes=True)[1].float()

    def judge_real(self, discriminator: nn.Module, real: torch.Tensor, step: int,
                   autocast: Callable[[], ContextManager], labels: torch.Tensor | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``judge`` of the real batch, and the (lazy, scaled) R1 penalty when it is due."""
        if not self.r1_due(step):
            with autocast():
                return *self.judge(discriminator, real, labels), None
        real = real.detach().requires_grad_(True)
        with autocast(), torch.autocast("cpu", enabled=False):  # see "R1 on a CPU" above
            logits, attributes = self.judge(discriminator, real, labels)
        (gradient,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = gradient.float().square().sum(dim=(1, 2, 3)).mean() * (self.r1_gamma / 2) * self.r1_every
        penalty = penalty * self.r1_scale()
        return logits, attributes, penalty

    def path_length(self, z: torch.Tensor, step: int) -> torch.Tensor | None:
        """The lazy, scaled path-length penalty of a generator with a mapping network on
        half of the step's latents, every PL_EVERY steps; else None. In fp32."""
        if self.pl_weight == 0 or step % PL_EVERY:
            return None
        return self.path_length_penalty(z[: max(1, len(z) // 2)]) * self.pl_weight * PL_EVERY

    def attribute_error(self, attribute_logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | None:
        """How badly D's attribute head reads ``labels`` (mean binary cross-entropy); None when off."""
        if attribute_logits is None:
            return None
        return F.binary_cross_entropy_with_logits(attribute_logits[:, : labels.shape[1]], labels.float())

    @property
    def twin(self) -> bool:
        """Whether D has a twin reader (some attribute's share is above 0)."""
        shares = self.attribute_twin if isinstance(self.attribute_twin, tuple) else (self.attribute_twin,)
        return any(share > 0 for share in shares)

    def twin_error(self, attribute_logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | None:
        """How badly D's twin reader (the logits after the head's) reads ``labels``, one
        mean binary cross-entropy per attribute; None when the twin is off."""
        if attribute_logits is None or not self.twin:
            return None
        return F.binary_cross_entropy_with_logits(attribute_logits[:, labels.shape[1] :], labels.float(),
                                                  reduction="none").mean(dim=0)

    def g_attribute_error(self, head: torch.Tensor | None, twin: torch.Tensor | None) -> torch.Tensor | None:
        """G's attribute term before its weight: the head's error on the fakes, less each
        attribute's ``attribute_twin`` share of the twin's (averaged over the attributes)
        when there is one."""
        if head is None or twin is None:
            return head
        return head - (torch.as_tensor(self.attribute_twin, dtype=twin.dtype, device=twin.device) * twin).mean()

    def d_attribute_error(self, real: torch.Tensor | None, twin: torch.Tensor | None) -> torch.Tensor | None:
        """D's attribute term before its weight: the head's error on the real images, plus
        the twin's on the (detached) fakes, every attribute, when there is one."""
        return real if real is None or twin is None else real + twin.mean()

    def fake_labels(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        """The labels G makes this step's fakes for: the real batch's, with the second
        half repeating the first half's when the mode-seeking term is on."""
        if self.mode_seeking == 0 or labels is None or len(labels) < 2:
            return labels
        half = len(labels) // 2
        return torch.cat([labels[:half], labels[:half], labels[2 * half :]])

    def mode_seeking_ratio(self, fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
        """Mean |image difference| over mean |latent difference| of the batch's pairs
        (fake i and fake i + half); None when the term is off."""
        if self.mode_seeking == 0 or len(fake) < 2:
            return None
        half = len(fake) // 2
        images = (fake[:half].float() - fake[half : 2 * half].float()).abs().mean()
        return images / (z[:half].float() - z[half : 2 * half].float()).abs().mean()

    def seeking_penalty(self, ratio: torch.Tensor | None) -> torch.Tensor | None:
        return None if ratio is None else self.mode_seeking / (ratio + 1e-5)

    def total(self, loss: torch.Tensor, penalty: torch.Tensor | None = None,
              attribute_error: torch.Tensor | None = None, seeking: torch.Tensor | None = None) -> torch.Tensor:
        """An adversarial loss plus the terms that are on: a penalty (R1 for D, path length
        for G), the weighted attribute error, and (G's) mode-seeking penalty."""
        for term in (penalty, seeking):
            if term is not None:
                loss = loss + term
        if attribute_error is not None:
            loss = loss + self.attribute_loss * attribute_error
        return loss


def _figures(loss_g, loss_d, real_logits, fake_logits, r1, attributes_real, attributes_fake,
             path_length=None, seeking_ratio=None, twin=None) -> dict[str, torch.Tensor]:
    figures = {
        "loss_g": loss_g.detach(),
        "loss_d": loss_d.detach(),
        "d_real": torch.sigmoid(real_logits.detach()).mean(),
        "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
    }
    for name, value in (("r1", r1), ("attr_real", attributes_real), ("attr_fake", attributes_fake),
                        ("pl", path_length), ("ms", seeking_ratio), ("attr_twin", None if twin is None else twin.mean())):
        if value is not None:
            figures[name] = value.detach()
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
    made_for = objective.fake_labels(labels)
    with autocast():
        fake = generator(z, made_for)
        fake_logits, fake_attributes = objective.judge(discriminator, fake, made_for)
    real_logits, real_attributes, r1 = objective.judge_real(discriminator, real, step, autocast, labels)
    loss_d = objective.d_loss(real_logits, fake_logits)
    loss_g = objective.g_loss(fake_logits)
    attributes_real = objective.attribute_error(real_attributes, labels)
    attributes_fake = objective.attribute_error(fake_attributes, made_for)
    twin = objective.twin_error(fake_attributes, made_for)  # D's gradients of it come from this pass too
    ratio = objective.mode_seeking_ratio(fake, z)
    g_params = [p for p in generator.parameters() if p.requires_grad]
    d_params = [p for p in discriminator.parameters() if p.requires_grad]
    path_length = objective.path_length(z, step)
    g_grads = torch.autograd.grad(objective.total(loss_g, path_length, objective.g_attribute_error(attributes_fake, twin),
                                                  objective.seeking_penalty(ratio)),
                                  g_params,
                                 retain_graph=True, allow_unused=True)  # a growing network's later stages wait
    d_grads = torch.autograd.grad(objective.total(loss_d, r1, objective.d_attribute_error(attributes_real, twin)),
                                  d_params, allow_unused=True)
    for params, grads in ((g_params, g_grads), (d_params, d_grads)):
        for p, g in zip(params, grads):
            p.grad = g
    g_optimizer.step()
    d_optimizer.step()
    return _figures(loss_g, loss_d, real_logits, fake_logits, r1, attributes_real, attributes_fake, path_length, ratio,
                    twin)


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
    made_for = objective.fake_labels(labels)
    with autocast():
        fake = generator(z, made_for)
    real_logits, real_attributes, r1 = objective.judge_real(discriminator, real, step, autocast, labels)
    with autocast():
        fake_logits, read_fakes = objective.judge(discriminator, fake.detach(), made_for,
                                                  read=objective.twin)
    loss_d = objective.d_loss(real_logits, fake_logits)
    attributes_real = objective.attribute_error(real_attributes, labels)
    twin = objective.twin_error(read_fakes, made_for)
    d_optimizer.zero_grad(set_to_none=True)
    objective.total(loss_d, r1, objective.d_attribute_error(attributes_real, twin)).backward()
    d_optimizer.step()

    discriminator.requires_grad_(False)  # G's step needs gradients through D, not for it
    with autocast():
        g_logits, fake_attributes = objective.judge(discriminator, fake, made_for)
    loss_g = objective.g_loss(g_logits)
    attributes_fake = objective.attribute_error(fake_attributes, made_for)
    twin_of_g = objective.twin_error(fake_attributes, made_for)  # the twin D just updated, on G's fakes
    ratio = objective.mode_seeking_ratio(fake, z)
    path_length = objective.path_length(z, step)
    g_optimizer.zero_grad(set_to_none=True)
    objective.total(loss_g, path_length, objective.g_attribute_error(attributes_fake, twin_of_g),
                    objective.seeking_penalty(ratio)).backward()
    g_optimizer.step()
    discriminator.requires_grad_(True)
    return _figures(loss_g, loss_d, real_logits, fake_logits, r1, attributes_real, attributes_fake, path_length, ratio,
                    twin)


STEPS = {"thesis": thesis_step, "alternating": alternating_step}
