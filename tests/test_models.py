import math

import pytest
import torch
from torch import nn

from facegan import configure
from facegan import models
from tests.conftest import tiny_config


def test_thesis128_has_the_thesis_parameter_counts():
    generator, discriminator = models.build(configure.preset("thesis128").model)
    assert models.parameter_count(generator) == 14_175_491
    assert models.parameter_count(discriminator) == 2_789_313


def test_thesis128_layers_match_the_thesis():
    generator, discriminator = models.build(configure.preset("thesis128").model)
    assert generator.dense.in_features == 128 and generator.dense.out_features == 8 * 8 * 128
    transposed = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in transposed] == [1024, 512, 256, 128]
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in transposed)
    last = [m for m in generator.modules() if isinstance(m, nn.Conv2d)][-1]
    assert last.kernel_size == (5, 5) and last.out_channels == 3
    convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 256, 512]
    assert [m.p for m in discriminator.modules() if isinstance(m, nn.Dropout)] == [0.2]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*generator.modules(), *discriminator.modules()])
    torch.manual_seed(0)
    images = generator(torch.randn(2, 128))
    assert images.shape == (2, 3, 128, 128)
    assert images.min() >= 0 and images.max() <= 1  # sigmoid
    assert discriminator(images).shape == (2,)


def test_dcgan64_matches_the_dcgan_paper_networks():
    generator, discriminator = models.build(configure.preset("dcgan64").model)
    # the same networks as pytorch/examples dcgan at ngf = ndf = 64
    assert models.parameter_count(generator) == 3_576_704
    assert models.parameter_count(discriminator) == 2_765_568
    images = generator(torch.randn(3, 100))
    assert images.shape == (3, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    first = list(discriminator.body)[:2]
    assert isinstance(first[0], nn.Conv2d) and isinstance(first[1], nn.LeakyReLU)  # no batch norm first


@pytest.mark.parametrize("preset", ["thesis128", "dcgan64"])
@pytest.mark.parametrize("resolution", [16, 32])
def test_small_versions_make_images_of_their_resolution(preset, resolution):
    config = tiny_config(preset, resolution=resolution)
    generator, discriminator = models.build(config.model)
    images = generator(torch.randn(2, config.model.z_dim))
    assert images.shape == (2, 3, resolution, resolution)
    assert discriminator(images).shape == (2,)


def test_glorot_uniform_init_stays_within_its_bound_and_zeroes_biases():
    torch.manual_seed(0)
    generator, _ = models.build(configure.preset("thesis128").model)
    layer = generator.body[0]  # ConvTranspose 128 -> 1024, 4x4
    fan_in, fan_out = 128 * 16, 1024 * 16
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert layer.weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.95 * bound  # uniform, so it reaches near the bound
    assert torch.all(layer.bias == 0)


def test_dcgan_init_is_normal_with_std_002():
    torch.manual_seed(0)
    generator, _ = models.build(configure.preset("dcgan64").model)
    weight = generator.body[0].weight
    assert abs(weight.std().item() - 0.02) < 0.001
    assert abs(weight.mean().item()) < 0.001
