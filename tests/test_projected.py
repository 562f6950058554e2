"""The projected discriminator's parts: the frozen ImageNet network, its mixing layers, its heads."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter

from facegan import configure
from facegan import models
from facegan.data.synthetic import synthetic_faces
from facegan.metrics import distances
from facegan.models import efficientnet
from facegan.models.fastgan import FastGANGenerator
from facegan.models.projected import ProjectedDiscriminator


def pooled_deepest(network, images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        return network.features(x)[-1].mean(dim=(2, 3)).double().numpy()


def test_the_imagenet_weights_load_strictly_and_stay_frozen():
    network = efficientnet.pretrained()  # strict: every weight of the file used, every shape as built
    assert sum(p.numel() for p in network.parameters()) == 4_652_008
    assert not network.training and not any(p.requires_grad for p in network.parameters())


def test_its_features_tell_faces_from_noise_and_from_blurred_faces():
    network = efficientnet.pretrained()
    faces = synthetic_faces(192, 64, seed=5)
    a, b = faces[:96], faces[96:]
    blurred = np.stack([np.asarray(Image.fromarray(f).filter(ImageFilter.GaussianBlur(2))) for f in b])
    noise = np.random.default_rng(0).integers(0, 256, b.shape, dtype=np.uint8)
    reference = pooled_deepest(network, a)
    floor, blur, static = (distances.fid(reference, pooled_deepest(network, x)) for x in (b, blurred, noise))
    assert floor < blur < static and blur > 2 * floor


def test_only_the_heads_train_and_the_feature_network_stays_out_of_checkpoints():
    torch.manual_seed(0)
    d = ProjectedDiscriminator(resolution=32, width=8)
    assert all(name.startswith("heads.") for name, _ in d.named_parameters())
    assert not any("backbone" in key or key.startswith("_") for key in d.state_dict())
    assert any(key.startswith("mix_") for key in d.state_dict())  # the fixed random mixing is saved
    images = torch.randn(3, 3, 32, 32, requires_grad=True)
    d.train()
    d(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0  # G learns through the frozen network
    assert not d.__dict__["backbone"].training  # train() of D leaves the feature network in inference mode


def test_the_random_mixing_is_seeded_with_the_rest():
    config = configure.preset("fast64")
    torch.manual_seed(1)
    _, a = models.build(config.model)
    torch.manual_seed(1)
    _, b = models.build(config.model)
    torch.manual_seed(2)
    _, c = models.build(config.model)
    assert torch.equal(a.mix_channels_0, b.mix_channels_0) and not torch.equal(a.mix_channels_0, c.mix_channels_0)


def test_the_conditional_version_follows_its_labels_and_keeps_the_plain_layout():
    config = configure.override(configure.preset("fast64"), {
        "resolution": 32, "g_width": 4, "d_width": 8, "attributes": "Male,Smiling", "attribute_loss": 1.0})
    torch.manual_seed(0)
    generator, discriminator = models.build(config.model, attribute_head=True)
    generator.eval(), discriminator.eval()  # batch statistics and spectral norm's power iteration held still
    z, off, on = torch.randn(4, config.model.z_dim), torch.zeros(4, 2), torch.zeros(4, 2)
    on[:, 0] = 1
    images = generator(z, off)
    assert images.shape == (4, 3, 32, 32) and not torch.allclose(images, generator(z, on))
    # each head's logit moves with the labels by its projection term, and by nothing else
    moved = discriminator(images, on) - discriminator(images, off)
    for k, (head, embed, features) in enumerate(zip(discriminator.heads, discriminator.embeds,
                                                    discriminator.features(images))):
        last = head[:-1](features)
        pooled = last.mean(dim=(2, 3)) / last.shape[1] ** 0.5
        assert torch.allclose(moved[:, k], (pooled * 2 * embed.weight[:, 0]).sum(1), atol=1e-4)
    logits, attributes = discriminator(images, off, attributes=True)
    assert torch.equal(logits, discriminator(images, off)) and attributes.shape == (4, 2)
    # the unconditional networks are the ones fast64 checkpoints hold
    plain = configure.override(config, {"attributes": "", "attribute_loss": 0.0}).model
    plain_g, plain_d = models.build(plain)
    assert not hasattr(plain_d, "embeds") and plain_g.start[0].in_channels == config.model.z_dim
    assert generator.start[0].in_channels == config.model.z_dim + 2
    assert {k for k in plain_g.state_dict()} == {k for k in FastGANGenerator(32, 100, 4).state_dict()}
