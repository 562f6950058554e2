"""Generators on their own: generator files (safetensors), ONNX checked by onnxruntime,
and the models shipped with facegan."""

import numpy as np
import pytest
import torch

from facegan import checkpoint, export, generator_file, models, pretrained, sample
from facegan.cli import main
from facegan.conditions import Conditions
from facegan.train.trainer import train
from tests.conftest import tiny_config, tiny_plan, widened

CPU = torch.device("cpu")


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny DCGAN trained for real (with a moving average of G), and its last checkpoint."""
    run = tmp_path_factory.mktemp("export") / "run"
    summary = train(tiny_plan(run, epochs=2, ema_kimg=0.1))
    return summary["checkpoint"]


def test_a_generator_file_makes_the_checkpoints_faces(trained, tmp_path, capsys):
    out = tmp_path / "g.safetensors"
    code, stdout, err = run_cli(capsys, "export", "--checkpoint", trained, "--out", out)
    assert code == 0, err
    assert "fp32" in stdout
    from_checkpoint, config, _ = sample.load_generator(trained, CPU)
    from_file, file_config, conditions = sample.load_generator(out, CPU)
    assert conditions is None and file_config == config
    state = checkpoint.TrainingState.load(trained)
    assert all(torch.equal(from_file.state_dict()[k], v) for k, v in state.generator_ema.items())  # the average, not G
    assert np.array_equal(sample.generate(from_checkpoint, 8, 5, CPU), sample.generate(from_file, 8, 5, CPU))
    code, _, err = run_cli(capsys, "generate", "--checkpoint", out, "-n", 4, "--out", tmp_path / "faces.png")
    assert code == 0, err


def test_half_precision_stores_rounded_weights_and_says_how_far_images_move(trained, tmp_path, capsys):
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    assert run_cli(capsys, "export", "--checkpoint", trained, "--out", full)[0] == 0
    code, stdout, err = run_cli(capsys, "export", "--checkpoint", trained, "--out", half, "--half")
    assert code == 0, err
    assert "fp16 weights move the images by at most" in stdout
    assert half.stat().st_size < 0.6 * full.stat().st_size
    exact, config, _ = sample.load_generator(full, CPU)
    rounded, _, _ = sample.load_generator(half, CPU)
    for name, value in exact.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(rounded.state_dict()[name], expected), name
    moved = export.half_precision_error(exact, config, None)
    direct = np.abs(sample.generate(exact, 64, 0, CPU).astype(int) - sample.generate(rounded, 64, 0, CPU).astype(int))
    assert moved["max_levels"] == direct.max() and moved["mean_levels"] == pytest.approx(direct.mean())


@pytest.mark.slow
@pytest.mark.parametrize("preset, attributes", [("thesis128", ""), ("dcgan64", ""), ("fast64", ""), ("progan128", ""),
                                                ("style64", ""),
                                                ("cfast64", "Male,Smiling,Eyeglasses")])
def test_onnx_export_matches_pytorch(preset, attributes, tmp_path, capsys):
    """Every family, conditional or not, through `facegan export --format onnx`: the file
    run by onnxruntime gives PyTorch's pixels within export.ONNX_TOLERANCE."""
    config = tiny_config(preset, resolution=32, attributes=attributes) if attributes else tiny_config(preset, resolution=32)
    torch.manual_seed(0)
    generator, _ = models.build(config.model)
    generator.eval()
    conditions = None
    if attributes:
        rng = np.random.default_rng(0)
        conditions = Conditions.of(tuple(attributes.split(",")), rng.integers(0, 2, (100, 3)))
    source = tmp_path / "g.safetensors"
    generator_file.save(generator.state_dict(), config, conditions, source)
    out = tmp_path / "g.onnx"
    code, stdout, err = run_cli(capsys, "export", "--checkpoint", source, "--out", out)
    assert code == 0, err
    assert "onnxruntime matches PyTorch" in stdout
    assert export.onnx_difference(out, generator, config, conditions, n=5, seed=9) <= export.ONNX_TOLERANCE

    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert '"family"' in metadata["facegan_config"] and metadata["output_range"] == str(list(generator.output_range))


def test_damaged_or_foreign_generator_files_are_refused(trained, tmp_path, capsys):
    good = tmp_path / "good.safetensors"
    assert run_cli(capsys, "export", "--checkpoint", trained, "--out", good)[0] == 0
    data = good.read_bytes()
    cases = {"truncated": data[: len(data) // 2], "noise": bytes(range(256)) * 4}
    for name, content in cases.items():
        (tmp_path / f"{name}.safetensors").write_bytes(content)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    expected = {"truncated": "truncated or corrupt", "noise": "truncated or corrupt",
                "foreign": "not a facegan generator", "missing": "does not exist"}
    for name, message in expected.items():
        code, _, err = run_cli(capsys, "generate", "--checkpoint", tmp_path / f"{name}.safetensors",
                               "--out", tmp_path / "x.png")
        assert code == 2 and "Traceback" not in err, err
        assert err.startswith("facegan: error:") and message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("argv, message", [
    (["--out", "g.pt"], "cannot tell the format from g.pt"),
    (["--out", "g.bin", "--format", "safetensors"], "must end in .safetensors"),
    (["--out", "g.onnx", "--half"], "--half and --card are for safetensors exports"),
])
def test_export_refuses_what_it_cannot_write(trained, tmp_path, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "export", "--checkpoint", trained, *argv)
    assert code == 2 and message in err, err


def test_an_unknown_shipped_model_names_the_shipped_ones(capsys):
    code, _, err = run_cli(capsys, "generate", "--model", "celeba46", "--out", "x.png")
    assert code == 2 and "no shipped model 'celeba46'" in err and "did you mean celeba64?" in err, err


def test_the_shipped_model_makes_faces_with_no_run_given(tmp_path, capsys):
    """`facegan generate` with no source: 16 faces of the shipped CelebA model."""
    path = pretrained.path(pretrained.DEFAULT)
    assert path.stat().st_size <= 20 * 2**20
    found = generator_file.metadata(path)
    assert found["config"]["model"]["resolution"] == 64 and found["precision"] == "fp16"
    card = generator_file.card(path)
    assert card["images_seen"] > 0 and card["fid"] > card["fid_floor"] > 0 and "Male" in card["attributes"]
    out = tmp_path / "faces"
    code, stdout, err = run_cli(capsys, "generate", "-n", 16, "--out", out)
    assert code == 0, err
    assert f"from the shipped model {pretrained.DEFAULT}" in stdout
    faces = sorted(out.iterdir())
    assert len(faces) == 16
    from PIL import Image

    images = np.stack([np.asarray(Image.open(f)) for f in faces])
    assert images.shape == (16, 64, 64, 3) and images.std() > 20  # pictures, not a flat colour
    assert len({im.tobytes() for im in images}) == 16
    code, stdout, _ = run_cli(capsys, "models")
    assert code == 0 and f"{pretrained.DEFAULT} (default)" in stdout and f"FID {card['fid']:.1f}" in stdout


def test_generate_interpolate_walks_from_one_seeds_face_to_the_next(tmp_path, capsys):
    config = tiny_config("fast64", resolution=32)
    torch.manual_seed(0)
    generator = widened(models.build(config.model)[0])
    source = tmp_path / "g.safetensors"
    generator_file.save(generator.state_dict(), config, None, source)
    code, stdout, err = run_cli(capsys, "generate", "--checkpoint", source, "--interpolate", "-n", 5, "--seed", 3,
                                "--out", tmp_path / "walk")
    assert code == 0 and "a walk of 5 faces from seed 3 to seed 4" in stdout, err
    from PIL import Image

    walk = np.stack([np.asarray(Image.open(f)).astype(int) for f in sorted((tmp_path / "walk").iterdir())])
    loaded, _, _ = sample.load_generator(source, CPU)
    start, end = (sample.generate(loaded, 1, seed, CPU)[0].astype(int) for seed in (3, 4))
    assert len(walk) == 5 and np.abs(start - end).max() > 20
    assert np.abs(walk[0] - start).max() <= 1 and np.abs(walk[-1] - end).max() <= 1  # the ends are the two faces
    assert np.abs(walk[2] - start).max() > 10 and np.abs(walk[2] - end).max() > 10
    code, _, err = run_cli(capsys, "generate", "--checkpoint", source, "--interpolate", "-n", 1, "--out", "x.png")
    assert code == 2 and "--interpolate needs -n of at least 2" in err
