"""A style-based generator (Karras, Laine, Aila 2019; StyleGAN2, Karras et al. 2020),
sized for CPUs.

The generator does not take z at its input. A *mapping network* (an MLP, learning at a
hundredth of the rate) turns z into w, a code in a space the network shapes for
itself; every convolution of the *synthesis network*, which starts from a learned 4x4
constant, is then steered by w:

- **modulation**: an affine map of w gives one scale per input channel of the
  convolution (the "style"); **demodulation** rescales each output channel to unit
  expected size, which removed StyleGAN1's blob artefacts (StyleGAN2's fix for AdaIN).
  Done, as stylegan2-ada-pytorch's non-fused path, by scaling the input and the output
  of one ordinary convolution: cheap on CPUs;
- **noise**: each layer adds per-pixel Gaussian noise with a learned strength, so
  hair strands and pores need not be drawn from w; in inference (``eval()``) the noise
  is a fixed map drawn at construction, so the same latent gives the same face;
- **skip generator**: every resolution adds its RGB image to the upsampled image of the
  one below (no progressive growing needed); the discriminator is **residual**;
- **style mixing** (training): with probability ``model.style_mixing`` the layers from a
  random cutoff on take the w of a second z, so no layer may rely on its neighbours
  having the same style; ``mixed`` does the same on purpose, to show what each layer
  controls;
- **truncation**: w pulled towards the average w (``w_average``, tracked in training)
  by a factor psi < 1 trades variety for typical, cleaner faces;
- **path-length regularisation** (``train.pl_weight``): a fixed-size step in w should
  move the image by a fixed amount, whatever w is (``path_length_penalty``).

Channels: ``width`` at the full size, doubling per halving, at most 8 x ``width``; w has
``model.z_dim`` values; four mapping layers. Upsampling is bilinear before a 3x3
convolution, downsampling an average (the reference uses a [1, 3, 3, 1] blur).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from facegan.config import ModelConfig, setting
from facegan.models.family import Family, Mapping
from facegan.models.layers import EqualConv2d, EqualLinear, MinibatchStd, lrelu, pixel_norm, sides, widths

@dataclass
class Settings:
    """[model.stylegan2]"""

    style_mixing: float = setting(0.9, "share of training batches whose later layers take the styles of a second "
                                       "latent", (0, 1))


MAPPING_LAYERS = 4
W_AVERAGE_BETA = 0.995  # how slowly the average w moves (per step)
PATH_LENGTH_DECAY = 0.01  # how fast the path-length target follows the lengths measured


class ModulatedConv2d(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, kernel: int, w_dim: int, demodulate: bool = True,
                 up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, channels_in, gain=1.0, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels_out, channels_in, kernel, kernel))
        self.scale = 1 / math.sqrt(channels_in * kernel * kernel)
        self.demodulate, self.up = demodulate, up

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (N, channels_in)
        weight = self.weight * self.scale
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=weight.shape[-1] // 2)
        if self.demodulate:  # each output channel's expected size, over the styled weights
            size = (weight.square().sum(dim=(2, 3))[None] * styles.square()[:, None, :]).sum(dim=2)  # (N, out)
            x = x * torch.rsqrt(size + 1e-8)[:, :, None, None].to(x.dtype)
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 convolution, noise, bias, leaky ReLU."""

    def __init__(self, channels_in: int, channels_out: int, w_dim: int, side: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(channels_in, channels_out, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(channels_out))
        self.register_buffer("noise", torch.randn(1, 1, side, side))  # inference's fixed noise

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, w)
        noise = torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) if self.training else self.noise
        x = x + noise.to(x.dtype) * self.noise_strength.to(x.dtype) + self.bias[None, :, None, None].to(x.dtype)
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class ToRGB(nn.Module):
    def __init__(self, channels_in: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(channels_in, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype)


class StyleGAN2Generator(nn.Module):
    output_range = (-1.0, 1.0)  # linear output: values outside are clipped when shown

    def __init__(self, resolution: int = 64, z_dim: int = 128, width: int = 16, style_mixing: float = 0.9):
        super().__init__()
        self.z_dim = self.w_dim = z_dim
        self.style_mixing = style_mixing
        c = widths(resolution, width)
        self.mapping_layers = nn.ModuleList([EqualLinear(z_dim, z_dim, lr_multiplier=0.01)
                                             for _ in range(MAPPING_LAYERS)])
        self.const = nn.Parameter(torch.randn(1, c[4], 4, 4))
        self.first = StyleLayer(c[4], c[4], z_dim, 4)
        self.first_rgb = ToRGB(c[4], z_dim)
        self.blocks = nn.ModuleList([nn.ModuleList([StyleLayer(c[s // 2], c[s], z_dim, s, up=True),
                                                    StyleLayer(c[s], c[s], z_dim, s), ToRGB(c[s], z_dim)])
                                     for s in sides(resolution)[1:]])
        self.ws = 2 + 2 * len(self.blocks)  # one w per convolution and one for the last RGB layer
        self.register_buffer("w_average", torch.zeros(z_dim))
        self.register_buffer("path_length_mean", torch.zeros(()))

    def mapping(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """w for each z; truncation psi < 1 pulls it towards the average w."""
        w = pixel_norm(z.reshape(z.shape[0], -1))
        for layer in self.mapping_layers:
            w = lrelu(layer(w))
        return w if truncation == 1 else torch.lerp(self.w_average.to(w.dtype), w, truncation)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """Images from per-layer codes ws (N, self.ws, w_dim)."""
        x = self.first(self.const.expand(ws.shape[0], -1, -1, -1).to(ws.dtype), ws[:, 0])
        image = self.first_rgb(x, ws[:, 1])
        for i, (up, conv, to_rgb) in enumerate(self.blocks):
            x = conv(up(x, ws[:, 1 + 2 * i]), ws[:, 2 + 2 * i])
            image = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False) + to_rgb(x, ws[:, 3 + 2 * i])
        return image

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation: float = 1.0) -> torch.Tensor:
        w = self.mapping(z, truncation)
        ws = w[:, None].expand(-1, self.ws, -1)
        if self.training:
            with torch.no_grad():
                self.w_average.copy_(torch.lerp(w.detach().float().mean(dim=0), self.w_average, W_AVERAGE_BETA))
            if self.style_mixing > 0 and float(torch.rand(())) < self.style_mixing:
                cutoff = int(torch.randint(1, self.ws, ()))
                second = self.mapping(torch.randn_like(z))[:, None].expand(-1, self.ws - cutoff, -1)
                ws = torch.cat([ws[:, :cutoff], second], dim=1)
        return self.synthesis(ws)

    def mixed(self, z_coarse: torch.Tensor, z_fine: torch.Tensor, from_layer: int, truncation: float = 1.0) -> torch.Tensor:
        """Images with ``z_coarse``'s styles before layer ``from_layer`` and ``z_fine``'s from it on."""
        if not 0 <= from_layer <= self.ws:
            raise ValueError(f"from_layer must be between 0 and {self.ws}")
        coarse = self.mapping(z_coarse, truncation)[:, None].expand(-1, from_layer, -1)
        fine = self.mapping(z_fine, truncation)[:, None].expand(-1, self.ws - from_layer, -1)
        return self.synthesis(torch.cat([coarse, fine], dim=1))

    def path_length_penalty(self, z: torch.Tensor) -> torch.Tensor:
        """How far the image's response to a small step in w strays from its running mean
        (StyleGAN2): the squared gradient of <G(w), noise> by w, for random image-sized
        noise, should be the same size for every w. Updates the running mean."""
        ws = self.mapping(z)[:, None].expand(-1, self.ws, -1)
        image = self.synthesis(ws).float()
        noise = torch.randn_like(image) / math.sqrt(image.shape[2] * image.shape[3])
        (gradient,) = torch.autograd.grad((image * noise).sum(), ws, create_graph=True)
        lengths = gradient.float().square().sum(dim=2).mean(dim=1).sqrt()
        mean = torch.lerp(self.path_length_mean, lengths.detach().mean(), PATH_LENGTH_DECAY)
        self.path_length_mean.copy_(mean)
        return (lengths - mean).square().mean()


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.conv0 = EqualConv2d(channels_in, channels_in, 3)
        self.conv1 = EqualConv2d(channels_in, channels_out, 3)
        self.skip = EqualConv2d(channels_in, channels_out, 1, gain=1.0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skipped = F.avg_pool2d(self.skip(x), 2)
        x = F.avg_pool2d(lrelu(self.conv1(lrelu(self.conv0(x)))), 2)
        return (x + skipped) / math.sqrt(2)


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, resolution: int = 64, width: int = 16):
        super().__init__()
        c = widths(resolution, width)
        self.from_rgb = EqualConv2d(3, c[resolution], 1)
        self.blocks = nn.Sequential(*[ResidualBlock(c[s], c[s // 2]) for s in reversed(sides(resolution)[1:])])
        self.spread = MinibatchStd()
        self.last_conv = EqualConv2d(c[4] + 1, c[4], 3)
        self.dense = EqualLinear(c[4] * 16, c[4])
        self.logit = EqualLinear(c[4], 1, gain=1.0)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(lrelu(self.from_rgb(images)))
        h = lrelu(self.last_conv(self.spread(h)))
        return self.logit(lrelu(self.dense(h.flatten(1)))).view(-1)


def make_generator(m: ModelConfig) -> nn.Module:
    return StyleGAN2Generator(m.resolution, m.z_dim, m.g_width, m.family_settings.style_mixing)


def build(m: ModelConfig, attribute_head: int = 0) -> tuple[nn.Module, nn.Module]:
    return make_generator(m), StyleGAN2Discriminator(m.resolution, m.d_width)


FAMILY = Family("stylegan2", "Karras et al.'s style-based generator (mapping network, modulated convolutions, noise, "
                             "skip G, residual D, style mixing)",
                build, make_generator, min_resolution=8, settings=Settings,
                mapping=Mapping(style_inputs=lambda generator: generator.ws, mixed=StyleGAN2Generator.mixed,
                                path_length_penalty=StyleGAN2Generator.path_length_penalty))
