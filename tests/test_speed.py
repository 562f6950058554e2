"""The fast path computes what eager computes (within its precision), and can be switched off."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from facegan import config as cfg
from facegan import configure
from facegan import models
from facegan.conditions import attribute_names
from facegan.errors import FaceganError, FaceganWarning
from facegan.train import speed
from facegan.train.run import RunDir, plan
from facegan.train.generation import set_up
from facegan.train.trainer import train
from tests.conftest import tiny_config, tiny_plan

OFF = dict(precision="fp32", channels_last="off", compile="off", cuda_graphs="off", fused_adam="off", tf32="off",
           data_on_device="off")


def losses(preset: str, device: torch.device, steps: int = 3, dropout: float | None = None, **switches) -> np.ndarray:
    """loss_d and loss_g of the first ``steps`` steps of a tiny model, per step."""
    config = tiny_config(preset, batch_size=8, mirror=False, **({} if dropout is None else {"d_dropout": dropout}))
    config = replace(config, speed=replace(cfg.SpeedConfig(), **{**OFF, **switches}))
    images = np.random.default_rng(0).integers(0, 256, (8 * steps, 16, 16, 3), dtype=np.uint8)
    setup = set_up(config, device, images)
    out = []
    for real, _ in setup.loader.epoch(0):
        z = torch.randn(8, config.model.z_dim, generator=torch.Generator().manual_seed(len(out))).to(device)
        figures = setup.step(real, z)
        out.append([figures["loss_d"].item(), figures["loss_g"].item()])
    return np.array(out)


CPU = torch.device("cpu")


@pytest.mark.parametrize("preset", ["thesis128", "dcgan64"])
def test_channels_last_matches_eager(preset):
    np.testing.assert_allclose(losses(preset, CPU, channels_last="on"), losses(preset, CPU), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("preset", ["thesis128", "dcgan64", "progan128", "style64"])
def test_bf16_autocast_matches_eager_within_bf16_precision(preset):
    eager, bf16 = losses(preset, CPU), losses(preset, CPU, precision="bf16")
    np.testing.assert_allclose(bf16, eager, rtol=0.03, atol=0.02)
    assert not np.array_equal(bf16, eager)  # it really ran in another precision


def test_fused_adam_matches_eager():
    np.testing.assert_allclose(losses("dcgan64", CPU, fused_adam="on"), losses("dcgan64", CPU), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["thesis128", "dcgan64"])
def test_torch_compile_matches_eager(preset):
    # compiled dropout draws its masks from another generator, so compare without dropout
    eager = losses(preset, CPU, dropout=0.0)
    np.testing.assert_allclose(losses(preset, CPU, dropout=0.0, compile="on"), eager, rtol=1e-3, atol=1e-4)


H100 = speed.Hardware("cuda", "NVIDIA H100", "sm_90", "cuda")
AVX2 = speed.Hardware("cpu", "AMD EPYC", "AVX2", "")
AMX = speed.Hardware("cpu", "Intel Xeon", "AVX512", "amx")


def test_auto_turns_everything_on_for_cuda_and_off_switches_win():
    cuda = torch.device("cuda")
    auto = speed.resolve(cfg.SpeedConfig(), cuda, hardware=H100)
    assert (auto.bf16, auto.channels_last, auto.compile, auto.cuda_graphs, auto.fused_adam, auto.tf32) == (True,) * 6
    off = speed.resolve(replace(cfg.SpeedConfig(), **OFF), cuda, hardware=H100)
    assert not any((off.bf16, off.channels_last, off.compile, off.cuda_graphs, off.fused_adam, off.tf32, off.data_on_device))
    cpu = speed.resolve(cfg.SpeedConfig(), CPU, hardware=AVX2)
    assert cpu.channels_last and not (cpu.bf16 or cpu.compile or cpu.cuda_graphs or cpu.fused_adam or cpu.data_on_device)
    with pytest.raises(FaceganError, match="cuda_graphs needs a CUDA device"):
        speed.resolve(replace(cfg.SpeedConfig(), cuda_graphs="on", compile="on"), CPU)


@pytest.mark.parametrize("hardware, bf16", [
    (AMX, True), (AVX2, False), (speed.Hardware("cpu", "AMD EPYC", "AVX512", "avx512_bf16"), True),
    (H100, True), (speed.Hardware("cuda", "Tesla T4", "sm_75", ""), False)])
def test_auto_precision_follows_what_the_device_offers_and_says_why(hardware, bf16):
    plan = speed.resolve(cfg.SpeedConfig(), torch.device(hardware.kind), hardware=hardware)
    assert plan.bf16 == bf16
    described = plan.describe()
    assert described.startswith("bf16" if bf16 else "fp32") and f"auto on {hardware.name}" in described
    assert speed.resolve(replace(cfg.SpeedConfig(), precision="fp32"), CPU, hardware=hardware).bf16 is False


def test_this_machine_is_read_as_it_is():
    found = speed.detect(CPU)
    assert found.kind == "cpu" and found.capability == torch.backends.cpu.get_cpu_capability()
    assert (found.bf16 == "amx") == bool(torch.cpu._is_amx_tile_supported())


def test_a_run_with_the_fast_switches_resumes_exactly(tmp_path):
    switches = {"channels_last": "on", "fused_adam": "on", "data_on_device": "on"}
    train(tiny_plan(tmp_path / "straight", epochs=2, **switches))
    train(tiny_plan(tmp_path / "resumed", epochs=1, **switches))
    train(plan(tmp_path / "resumed", overrides={"epochs": 2}))
    a, b = (torch.load(RunDir(tmp_path / r).latest_checkpoint(), weights_only=True) for r in ("straight", "resumed"))
    assert all(torch.equal(a["generator"][k], b["generator"][k]) for k in a["generator"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("preset", ["thesis128", "dcgan64"])
def test_cuda_fast_path_matches_cuda_eager(preset):
    cuda = torch.device("cuda")
    eager = losses(preset, cuda, dropout=0.0)
    fast = losses(preset, cuda, dropout=0.0, precision="bf16", channels_last="on", compile="on", cuda_graphs="on",
                  fused_adam="on", tf32="on", data_on_device="on")
    np.testing.assert_allclose(fast, eager, rtol=0.05, atol=0.03)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_with_auto_settings_runs_and_resumes(tmp_path):
    train(tiny_plan(tmp_path / "run", epochs=1, device="cuda"))
    summary = train(plan(tmp_path / "run", overrides={"epochs": 2}))
    assert summary["step"] == 8


def test_a_failed_compile_warns_once_and_trains_on_without_it():
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no compiler on this machine")

    config = tiny_config("dcgan64")
    torch.manual_seed(0)
    generator, _ = models.build(config.model)
    plan = speed.resolve(replace(cfg.SpeedConfig(), compile="on", channels_last="off"), CPU, hardware=AVX2)
    wrapped = speed.prepare_network(generator, plan, backend=broken_backend)
    z = torch.randn(4, config.model.z_dim)
    with pytest.warns(FaceganWarning, match="torch.compile failed for the DCGANGenerator") as caught:
        first, second = wrapped(z), wrapped(z)
    assert len(caught) == 1 and "no compiler on this machine" in str(caught[0].message)
    assert torch.equal(first, generator(z)) and torch.equal(second, first)
    first.mean().backward()  # gradients reach the network's own parameters
    assert all(p.grad is not None for p in generator.parameters())


def test_the_steps_get_family_parts_from_the_family_bound_to_the_networks_themselves():
    """R1's scale at a growing D's stage and the path-length penalty reach the steps
    through the objective, from the family's capabilities bound to the networks (not to
    what the step calls, which may be a compiled wrapper)."""
    growing = set_up(tiny_config("progan128", resolution=32, grow_kimg=0.016), CPU, np.zeros((32, 32, 32, 3), np.uint8))
    assert growing.objective.r1_scale() == 16  # the 8 px stage of 32 px images
    growing.family.growth.grow_to(growing.discriminator, 10**6)
    assert growing.objective.r1_scale() == 1 and growing.objective.path_length_penalty is None
    styled = set_up(tiny_config("style64", resolution=16), CPU, np.zeros((32, 16, 16, 3), np.uint8))
    assert styled.objective.r1_scale() == 1
    torch.manual_seed(0)
    z = torch.randn(2, styled.config.model.z_dim)
    assert styled.objective.path_length_penalty(z) >= 0
    assert styled.generator.path_length_mean > 0  # the generator's own running mean moved


@pytest.mark.parametrize("preset", ["dcgan64", "progan128", "style64", "cfaces64"])
def test_the_model_size_is_counted_without_computing_or_drawing_anything(preset):
    model = tiny_config(preset).model
    state = torch.get_rng_state()
    counted = models.gflop_per_image(model)
    assert torch.equal(state, torch.get_rng_state())
    generator, discriminator = (network.eval() for network in models.build(model))
    growth = models.family_of(model).growth
    for network in (generator, discriminator) if growth else ():
        growth.grow_to(network, 2**62)
    attributes = len(attribute_names(model.attributes))
    labels = torch.ones(1, attributes) if attributes else None
    with FlopCounterMode(display=False) as counter:
        discriminator(generator(torch.randn(1, model.z_dim), labels), labels)
    assert counted == pytest.approx(counter.get_total_flops() / 1e9) and counted > 0


def test_auto_bf16_on_a_cpu_that_has_it_is_for_models_large_enough_to_gain():
    small, large = configure.preset("demo").model, configure.preset("faces64").model
    for hardware in (AMX, speed.Hardware("cpu", "AMD EPYC", "AVX512", "avx512_bf16")):
        plan = speed.resolve(cfg.SpeedConfig(), CPU, hardware=hardware, model=large)
        assert plan.bf16 and "0.11 GFLOP per image" in plan.describe()
        plan = speed.resolve(cfg.SpeedConfig(), CPU, hardware=hardware, model=small)
        assert not plan.bf16 and "0.012 GFLOP per image" in plan.describe()
    assert not speed.resolve(cfg.SpeedConfig(), CPU, hardware=AVX2, model=large).bf16
