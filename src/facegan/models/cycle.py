"""A translator: a face of domain A -> the same face in domain B, and back, learnt
without pairs (CycleGAN, Zhu et al. 2017), sized for two CPU cores.

The domains are CelebA attributes of one prepared cache (``model.cycle.domains``):
``"Smiling"`` makes A the faces without it and B those with it; ``"Blond_Hair:Black_Hair"``
makes A the faces with the first and not the second, B the reverse. ``model.cycle.balance``
names attributes both domains are made to share (``balanced``): CelebA's black-haired
faces are 55% men and its blond ones 7%, and a translator trained on them all learns
that blackening hair makes a man.

Generators (the authors' ResNet generator): a 7x7 convolution to ``g_width`` features,
two stride-2 convolutions (x2 features each), ``blocks`` residual blocks, two transposed
convolutions back (``upconv = "resize"``: nearest-neighbour doubling and a 3x3
convolution each), a 7x7 convolution to RGB and tanh (``output = "edit"``: a change to
the photo, see ``ResnetGenerator``); instance norm and ReLU after every convolution but
the last; reflection padding. A convolution followed by instance norm has
no bias (the authors' has one, which the norm subtracts again: its gradient is rounding
noise, which Adam turns into steps of the full learning rate). Discriminators (their 70x70 PatchGAN,
``d_layers`` deep): 4x4 convolutions, stride 2, LeakyReLU 0.2, instance norm after all
but the first, then a stride-1 convolution and a one-channel one: one logit per patch.

The checkpoint holds a translator as any run holds a generator and a discriminator: the
``Translator`` module holds both generators (``to_b``: A -> B, its forward pass;
``to_a``: B -> A), ``Critics`` both discriminators and the two pools of past fakes the
discriminators learn from (buffers, so that a resumed run draws from the pools it had).
Pixels in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from facegan.conditions import attribute_names
from facegan.config import ModelConfig, setting
from facegan.errors import FaceganError
from facegan.figures import Figure
from facegan.models.family import Family


@dataclass
class Settings:
    """[model.cycle]"""

    domains: str = setting("Smiling", "the two domains: ATTR (A = without it, B = with it) or ATTR1:ATTR2 "
                                      "(A = the first and not the second, B = the reverse), CelebA names")
    balance: str = setting("", "CelebA attributes, comma-separated, that both domains are made to share: of each "
                               "combination of them, both keep as many images as the smaller has, so that a "
                               "difference between the domains in these (more men among the black-haired) is not "
                               "learnt as part of the edit; empty: every image (the authors' recipe)")
    blocks: int = setting(6, "residual blocks of each translating generator", (1, 64))
    d_layers: int = setting(3, "stride-2 layers of each PatchGAN discriminator (3: the authors' 70x70 patches)",
                            (1, 6))
    cycle: float = setting(10.0, "weight of the cycle loss: L1 between a face and its translation translated back",
                           (0, 1e6))
    identity: float = setting(0.5, "weight of the identity loss, as a share of the cycle weight: L1 between a face "
                                   "of domain B and what the A -> B generator makes of it (keeps colours)", (0, 1e6))
    pool: int = setting(50, "past fakes each discriminator draws half its fakes from (0 = the newest only)",
                        (0, 100000))
    output: str = setting("image", "what each generator draws: image (the authors': a new image) or edit (a change "
                                   "to the photo it is given, added before tanh: it starts as the identity and "
                                   "keeps what it does not change; use it with identity 0, which would hold it "
                                   "there)", choices=("image", "edit"))
    upconv: str = setting("transposed", "how each generator doubles its maps' side: transposed (the authors' "
                                          "stride-2 transposed convolution) or resize (nearest-neighbour doubling, "
                                          "then a 3x3 convolution: no uneven overlap, so no checkerboard, Odena et "
                                          "al. 2016)", choices=("transposed", "resize"))
    keep: float = setting(0.0, "weight of the attribute loss (StarGAN's domain classification, Choi et al. 2018): "
                               "an attribute critic, learnt beside the discriminators from real faces' labels, "
                               "reads each translated face's domain attribute(s) and balance attributes, and both "
                               "generators are asked for the target domain's and the source face's own; 0 = none "
                               "(the authors' recipe)", (0, 1e6))
    smooth: float = setting(0.0, "weight of a total-variation penalty on each translation's change to its photo "
                                 "(mean L1 of the change's differences between neighbouring pixels): a change "
                                 "without grain; 0 = none", (0, 1e6))
    decay_from: float = setting(0.5, "share of the run's steps after which both learning rates fall linearly to "
                                     "0 at its last step (1 = constant)", (0, 1))


def domain_attributes(domains: str) -> tuple[str, ...]:
    """The CelebA attributes ``domains`` names: one, or two separated by a colon."""
    parts = [p.strip() for p in domains.split(":")]
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise FaceganError(f"model.cycle.domains must be ATTR or ATTR1:ATTR2, not {domains!r}")
    return attribute_names(",".join(parts), "model.cycle.domains")


def domain_of(labels: np.ndarray, domains: str) -> tuple[np.ndarray, np.ndarray]:
    """Which images are of domain A and which of B, from the 0/1 label columns
    (N, len(domain_attributes)): two boolean masks (an image in neither is in none)."""
    if len(domain_attributes(domains)) == 1:
        return labels[:, 0] == 0, labels[:, 0] == 1
    return (labels[:, 0] == 1) & (labels[:, 1] == 0), (labels[:, 0] == 0) & (labels[:, 1] == 1)


def balanced(labels: np.ndarray, in_a: np.ndarray, in_b: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the images of A and of B to train on, such that every combination of
    the 0/1 ``labels`` columns (N, K) has as many in A as in B: the smaller domain's
    count of it, drawn at random (by ``seed``) from the larger. K = 0: all of them."""
    a, b = np.flatnonzero(in_a), np.flatnonzero(in_b)
    if labels.shape[1] == 0:
        return a, b
    rng = np.random.default_rng([seed, 7])
    codes = labels.astype(np.int64) @ (1 << np.arange(labels.shape[1], dtype=np.int64))
    kept_a, kept_b = [], []
    for code in np.intersect1d(codes[a], codes[b]):
        of_a, of_b = a[codes[a] == code], b[codes[b] == code]
        n = min(len(of_a), len(of_b))
        kept_a.append(np.sort(rng.choice(of_a, n, replace=False)))
        kept_b.append(np.sort(rng.choice(of_b, n, replace=False)))
    return (np.sort(np.concatenate(kept_a)) if kept_a else a[:0]), (np.sort(np.concatenate(kept_b)) if kept_b else b[:0])


def balance_attributes(m: ModelConfig) -> tuple[str, ...]:
    return attribute_names(m.family_settings.balance, "model.cycle.balance")


def domain_names(domains: str) -> tuple[str, str]:
    """Words for A and B: ("no Smiling", "Smiling"), ("Blond_Hair", "Black_Hair")."""
    names = domain_attributes(domains)
    return (f"no {names[0]}", names[0]) if len(names) == 1 else (names[0], names[1])


EDGE = 1 - 2**-10  # "edit" output: the photo held this far inside (-1, 1), so atanh is finite (255 stays 255)


class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=False), nn.InstanceNorm2d(width), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(width, width, 3, bias=False), nn.InstanceNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def doubling(channels_in: int, channels_out: int, upconv: str) -> list[nn.Module]:
    """Layers that double a map's side, with the same 3x3 weights either way."""
    if upconv == "resize":
        return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                nn.Conv2d(channels_in, channels_out, 3, bias=False)]
    return [nn.ConvTranspose2d(channels_in, channels_out, 3, stride=2, padding=1, output_padding=1, bias=False)]


class ResnetGenerator(nn.Module):
    """One direction: an image -> the same image in the other domain. ``output``: "image"
    draws tanh(y) (the authors'); "edit" adds y to the photo before tanh, tanh(atanh(x) + y),
    so it starts as the identity and keeps what it does not change for free."""

    def __init__(self, width: int, blocks: int, output: str = "image", upconv: str = "transposed"):
        super().__init__()
        self.output = output
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(3, width, 7, bias=False), nn.InstanceNorm2d(width),
                                   nn.ReLU(True)]
        for i in range(2):
            w = width * 2**i
            layers += [nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False), nn.InstanceNorm2d(2 * w), nn.ReLU(True)]
        layers += [ResidualBlock(4 * width) for _ in range(blocks)]
        for i in range(2):
            w = width * 2 ** (2 - i)
            layers += [*doubling(w, w // 2, upconv), nn.InstanceNorm2d(w // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.output == "edit":
            return torch.tanh(torch.atanh(x.float().clamp(-EDGE, EDGE)) + out.float())  # in fp32: bf16 would blur it
        return torch.tanh(out)


class Translator(nn.Module):
    """Both directions; called like a generator, it translates A -> B."""

    output_range = (-1.0, 1.0)
    z_dim = 0  # it takes images, not latents

    def __init__(self, resolution: int, width: int, blocks: int, output: str = "image", upconv: str = "transposed"):
        super().__init__()
        self.resolution = resolution
        self.to_b, self.to_a = (ResnetGenerator(width, blocks, output, upconv),
                                ResnetGenerator(width, blocks, output, upconv))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.to_b(images)

    def direction(self, to_b: bool) -> nn.Module:
        return self.to_b if to_b else self.to_a


class PatchDiscriminator(nn.Module):
    def __init__(self, width: int, layers: int):
        super().__init__()
        body: list[nn.Module] = [nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = width
        for i in range(1, layers + 1):
            out = width * min(2**i, 8)
            body += [nn.Conv2d(channels, out, 4, stride=2 if i < layers else 1, padding=1, bias=False), nn.InstanceNorm2d(out),
                     nn.LeakyReLU(0.2, True)]
            channels = out
        body += [nn.Conv2d(channels, 1, 4, padding=1)]
        self.body = nn.Sequential(*body)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(images).flatten(1)


class AttributeCritic(nn.Module):
    """``count`` attribute logits of a face (``model.cycle.keep``): ``layers`` + 1 stride-2
    4x4 convolutions with LeakyReLU 0.2 and no normalisation (StarGAN's discriminator
    has none: instance norm would take out the colour an attribute can be), then a 3x3
    convolution to ``count`` channels, averaged over the map."""

    def __init__(self, width: int, layers: int, count: int):
        super().__init__()
        body: list[nn.Module] = []
        channels = 3
        for i in range(layers + 1):
            out = width * min(2**i, 8)
            body += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
            channels = out
        body += [nn.Conv2d(channels, count, 3, padding=1)]
        self.body = nn.Sequential(*body)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(images).float().mean((2, 3))


class ImagePool(nn.Module):
    """The last ``size`` fakes a discriminator was shown (Shrivastava et al. 2017): each
    new fake is, with probability 1/2, swapped for a random stored one, which the
    discriminator sees instead. Held in buffers, so a checkpoint keeps them."""

    def __init__(self, size: int, resolution: int):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, 3, resolution, resolution))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def draw(self, fakes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """What the discriminator sees for ``fakes``, the pool updated; the draws come from
        ``generator`` (seeded by the step, alike on every process), not the shared state."""
        if self.size == 0:
            return fakes
        shown = fakes.clone()
        coins = torch.rand(len(fakes), generator=generator).tolist()
        slots = torch.randint(0, self.size, (len(fakes),), generator=generator).tolist()
        for i in range(len(fakes)):
            filled = int(self.filled)
            if filled < self.size:
                self.images[filled] = fakes[i].float()
                self.filled += 1
            elif coins[i] < 0.5:
                shown[i] = self.images[slots[i]].to(fakes.dtype)
                self.images[slots[i]] = fakes[i].float()
        return shown


class Critics(nn.Module):
    """Both discriminators (``a`` judges faces of domain A, ``b`` of B), their pools, and
    with ``attributes`` > 0 the attribute critic of both domains' faces (``reader``)."""

    def __init__(self, resolution: int, width: int, layers: int, pool: int, attributes: int = 0):
        super().__init__()
        self.a, self.b = PatchDiscriminator(width, layers), PatchDiscriminator(width, layers)
        self.pool_a, self.pool_b = ImagePool(pool, resolution), ImagePool(pool, resolution)
        self.reader = AttributeCritic(width, layers, attributes) if attributes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.b(images)


def _generator(m: ModelConfig) -> Translator:
    s: Settings = m.family_settings
    return Translator(m.resolution, m.g_width, s.blocks, s.output, s.upconv)


def _build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    s: Settings = m.family_settings
    read = len(_data_attributes(m)) if s.keep else 0
    generator, critics = _generator(m), Critics(m.resolution, m.d_width, s.d_layers, s.pool, read)
    for network in (generator, critics):  # the authors' init: N(0, 0.02), zero biases
        for layer in network.modules():
            if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(layer.weight, 0.0, 0.02)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
    return generator, critics


def _check(m: ModelConfig) -> list[str]:
    s: Settings = m.family_settings
    try:
        shared = set(domain_attributes(s.domains)) & set(balance_attributes(m))
    except FaceganError as error:
        return [str(error)]
    if shared:
        return [f"model.cycle.balance cannot hold a domain's attribute ({', '.join(sorted(shared))}): the domains "
                "differ in it by definition"]
    if m.resolution >> (s.d_layers + 1) < 2:
        return [f"model.cycle.d_layers {s.d_layers} halves a {m.resolution} px face below 4 px: at most "
                f"{m.resolution.bit_length() - 4}"]
    return []


def _data_attributes(m: ModelConfig) -> tuple[str, ...]:
    """The labels training reads: the domains' attributes, then those it balances."""
    return domain_attributes(m.family_settings.domains) + balance_attributes(m)


FAMILY = Family("cycle", "translator: a face of domain A <-> domain B, unpaired (CycleGAN: ResNet generators, "
                "PatchGAN discriminators)", _build, _generator, min_resolution=32, max_resolution=512,
                settings=Settings, check=_check, kind="translator", data_attributes=_data_attributes,
                blank_input=lambda m, n: torch.zeros(n, 3, m.resolution, m.resolution),
                figures=(Figure("cycle", "cycle L1", "{:.4f}", panel="cycle error: A -> B -> A and B -> A -> B (L1)",
                                progress=True, colour=(52, 101, 164)),
                         Figure("identity", "identity L1", "{:.4f}", panel="identity error (L1)", progress=True,
                                colour=(117, 80, 123)),
                         Figure("smooth", "change TV", "{:.4f}", panel="total variation of the change (L1)",
                                progress=True, colour=(204, 0, 0)),
                         Figure("keep", "attributes", "{:.3f}", panel="attribute losses (BCE): translations, real faces",
                                progress=True, colour=(193, 125, 17)),
                         Figure("reader", "attribute critic", "{:.3f}",
                                panel="attribute losses (BCE): translations, real faces", colour=(78, 154, 6))))
