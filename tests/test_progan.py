"""Progressive growing: the schedule, seamless fade-ins, R1 at each stage's size, and a
run that grows through a fade-in, is cut in the middle of it and resumes bit for bit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facegan import checkpoint, models, sample
from facegan import configure
from facegan.cli import main
from facegan.errors import FaceganError
from facegan.models.progan import FAMILY, UPSAMPLING, ProGANDiscriminator, ProGANGenerator, growth
from facegan.train.ema import MovingAverage
from facegan.train.run import RunDir, plan
from facegan.train.trainer import train
from tests.conftest import tiny_plan
from tests.test_train import assert_same_training_state, final_state

CPU = torch.device("cpu")


def test_the_schedule_fades_each_stage_in_then_holds_it():
    kimg = 2.0  # 2,000 images per phase
    assert [growth(i * 1000, 2, kimg) for i in (0, 1, 2, 3, 4, 5, 6, 7, 100)] == [0, 0, 0, 0.5, 1, 1, 1, 1.5, 2]
    assert growth(2500, 2, kimg) == 0.25  # a quarter into stage 1's fade-in


def networks(level: float, upsample: str = "nearest") -> tuple[ProGANGenerator, ProGANDiscriminator]:
    torch.manual_seed(0)
    generator, discriminator = ProGANGenerator(32, 16, 4, 8, 1.0, upsample), ProGANDiscriminator(32, 4, 8, 1.0)
    for network in (generator, discriminator):
        network.set_level(level)
    return generator, discriminator


@pytest.mark.parametrize("upsample", UPSAMPLING)
@pytest.mark.parametrize("stage", [1, 2])
def test_a_fade_in_starts_exactly_where_the_stage_below_left_off(stage, upsample):
    """At the start of a fade-in (weight 1e-6 on the new stage) both networks compute what
    they computed with the stage below alone: growing never jolts training."""
    z, images = torch.randn(6, 16), torch.randn(6, 3, 32, 32)
    before_g, before_d = networks(stage - 1, upsample)
    after_g, after_d = networks(stage - 1 + 1e-6, upsample)
    assert after_g.fading and not before_g.fading and after_g.top == 2 * before_g.top
    assert torch.allclose(before_g(z), after_g(z), atol=1e-4)
    assert torch.allclose(before_d(images), after_d(images), atol=1e-4)


@pytest.mark.parametrize("upsample", UPSAMPLING)
def test_images_are_full_size_at_every_stage_and_blocky_below_it(upsample):
    for level, block in ((0, 4), (0.5, 2), (1, 2), (2, 1)):
        generator, _ = networks(level, upsample)
        image = generator(torch.randn(2, 16))
        assert image.shape == (2, 3, 32, 32)
        corner = image[:, :, :block, :block]
        assert torch.equal(corner, corner[:, :, :1, :1].expand_as(corner))  # nearest-neighbour enlargement


def test_bilinear_upsampling_changes_what_a_grown_generator_draws():
    """Same weights, fully grown: the two ways of doubling draw different images, so the
    setting is part of the model, and the generator built to load a checkpoint keeps it."""
    z = torch.randn(2, 16)
    nearest, _ = networks(2, "nearest")
    bilinear, _ = networks(2, "bilinear")
    assert not torch.allclose(nearest(z), bilinear(z))
    m = configure.override(configure.preset("progan128"), {"upsample": "bilinear"}).model
    assert models.build_generator(m).upsample == "bilinear"


def test_the_moving_average_is_short_while_growing_and_full_once_grown():
    """A new stage starts from random weights, so the average keeps to a sixth of a growth
    phase (grow_kimg = 1: 167 images) until the generator is fully grown (level 2)."""
    generator, _ = networks(0.5)
    average = MovingAverage(generator, half_life_kimg=10.0, limit=FAMILY.growth.average_half_life_limit)
    images = 10**6  # far past the start's ramp-up
    for level in (0.0, 0.5, 1.0, 1.75):
        average.module.set_level(level)
        assert average.beta(32, images) == pytest.approx(0.5 ** (32 / (1000 / 6))), level
    average.module.set_level(2.0)
    assert average.beta(32, images) == pytest.approx(0.5 ** (32 / 10_000))
    FAMILY.growth.grow_to(average.module, images)  # the schedule's way there: fully grown long before 10^6 images
    assert average.beta(32, images) == pytest.approx(0.5 ** (32 / 10_000))


def test_r1_is_measured_at_the_size_the_discriminator_works_at():
    """D at the 8 px stage of 32 px images: its gradient's squared norm at the full-size
    images, times ``gradient_scale``, is that at the 8 px images it looks at."""
    _, discriminator = networks(0)
    small = torch.randn(3, 3, 8, 8, requires_grad=True)
    (at_small,) = torch.autograd.grad(discriminator(F.interpolate(small, scale_factor=4)).sum(), small)
    full = F.interpolate(small.detach(), scale_factor=4).requires_grad_(True)
    (at_full,) = torch.autograd.grad(discriminator(full).sum(), full)
    assert FAMILY.growth.gradient_scale(discriminator) == 16
    assert torch.allclose(at_full.square().sum() * FAMILY.growth.gradient_scale(discriminator), at_small.square().sum(), rtol=1e-4)


def progan_plan(run_dir, **changes):
    # 32 px from 8 px, each phase 6 images: batches of 4 grow through two fade-ins in 8 steps
    return tiny_plan(run_dir, "progan128", resolution=32, grow_from=8, grow_kimg=0.006, batch_size=4,
                     synthetic_count=8, epochs=100, r1_every=2, ema_kimg=0.01, **changes)


def test_a_run_cut_mid_fade_resumes_bit_for_bit(tmp_path, capsys):
    train(progan_plan(tmp_path / "straight", max_steps=8))
    train(progan_plan(tmp_path / "cut", max_steps=3))
    cut = checkpoint.TrainingState.load(RunDir(tmp_path / "cut").latest_checkpoint())
    assert 0 < float(cut.generator["level"]) < 1  # stopped while stage 1 fades in
    generator, _, _ = sample.load_generator(RunDir(tmp_path / "cut").latest_checkpoint(), CPU)
    assert generator.fading and generator.top == 16  # it samples as it trained

    out = tmp_path / "g.safetensors"  # a generator file made mid-fade keeps its level too
    assert main(["export", "--run", str(tmp_path / "cut"), "--out", str(out)]) == 0, capsys.readouterr().err
    from_file, _, _ = sample.load_generator(out, CPU)
    assert from_file.top == 16 and from_file.fading
    assert (sample.generate(from_file, 4, 1, CPU) == sample.generate(generator, 4, 1, CPU)).all()

    train(plan(tmp_path / "cut", overrides={"max_steps": 8}))
    straight, resumed = final_state(tmp_path / "straight"), final_state(tmp_path / "cut")
    assert_same_training_state(straight, resumed)
    assert float(straight["generator"]["level"]) == 2  # fully grown: 28 images before step 8 are phase 4 of 6 images
    assert torch.equal(straight["generator_ema"]["level"], straight["generator"]["level"])
    logged = [(r["stage_px"], r["level"]) for r in RunDir(tmp_path / "straight").read_metrics() if "stage_px" in r]
    assert logged == sorted(logged) and logged[-1] == (32, 2)  # the log shows it growing


def test_growing_settings_are_checked():
    base = configure.preset("progan128")
    with pytest.raises(FaceganError, match="grow_from must be a power of two"):
        configure.override(base, {"grow_from": 12})
    with pytest.raises(FaceganError, match="grow_from must be a power of two from 4 to model.resolution"):
        configure.override(base, {"grow_from": 256})
    with pytest.raises(FaceganError, match="grow_kimg must be above 0"):
        configure.override(base, {"grow_kimg": 0})
    with pytest.raises(FaceganError, match="model.progan.upsample must be one of nearest, bilinear, not 'bicubic'"):
        configure.override(base, {"upsample": "bicubic"})
    with pytest.raises(FaceganError, match="model.grow_kimg is not a setting of family dcgan"):
        configure.override(configure.preset("faces64"), {"grow_kimg": 3})
    with pytest.raises(FaceganError, match="model.upsample is not a setting of family dcgan"):
        configure.override(configure.preset("faces64"), {"upsample": "bilinear"})
    assert models.family_of(base.model).name == "progan"
