"""The translator kind: domains from labels, a tiny CycleGAN trained for real (it learns a
colour shift between two sets of faces), resumed bit for bit after an interruption, and
its pool of past fakes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import configure, editing, models, sample
from facegan.data.synthetic import synthetic_faces
from facegan.errors import FaceganError
from facegan.models import cycle
from facegan.train.run import RunDir, RunPlan, plan
from facegan.train.trainer import Observer, train
from tests.test_train import assert_same_training_state, final_state

CPU = torch.device("cpu")


def tiny(**changes):
    return configure.override(configure.preset("cycle64"), {
        "resolution": 32, "g_width": 8, "d_width": 8, "blocks": 1, "d_layers": 2, "pool": 4, "batch_size": 4,
        "epochs": 2, "log_every": 1, "threads": 1, **changes})


def reddened(faces: np.ndarray) -> np.ndarray:
    """The faces of domain B in these tests: A's kind of face, much redder."""
    out = faces.astype(np.int16)
    out[..., 0] += 90
    out[..., 2] -= 40
    return out.clip(0, 255).astype(np.uint8)


def two_domains(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n faces, every second one of domain B (Smiling = 1 in its label column)."""
    faces = synthetic_faces(n, 32, seed=seed)
    labels = (np.arange(n) % 2).astype(np.float32)[:, None]
    faces[1::2] = reddened(faces[1::2])
    return faces, labels


def test_domains_come_from_one_or_two_attributes():
    labels = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    a, b = cycle.domain_of(labels[:, :1], "Smiling")
    assert a.tolist() == [True, False, True, False] and b.tolist() == [False, True, False, True]
    a, b = cycle.domain_of(labels, "Blond_Hair:Black_Hair")
    assert a.tolist() == [False, True, False, False] and b.tolist() == [False, False, True, False]
    assert cycle.domain_names("Smiling") == ("no Smiling", "Smiling")
    for bad, said in (("Smiling:Smiling", "named twice"), ("Smilling", "Smiling"), ("A:B:C", "ATTR1:ATTR2"),
                      (":Male", "ATTR1:ATTR2")):
        with pytest.raises(FaceganError, match=said):
            cycle.domain_attributes(bad)
    with pytest.raises(FaceganError, match="model.cycle.domains"):
        configure.override(configure.preset("cycle64"), {"domains": "Nope"})


def test_the_pool_fills_then_swaps_half_its_fakes_the_same_way_every_time():
    pool = cycle.ImagePool(4, 2)
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    assert torch.equal(pool.draw(first, torch.Generator().manual_seed(0)), first) and int(pool.filled) == 4
    later = (10 + torch.arange(64.0)).view(64, 1, 1, 1).expand(64, 3, 2, 2)
    shown = pool.draw(later, torch.Generator().manual_seed(1))
    swapped = shown[:, 0, 0, 0] != later[:, 0, 0, 0]
    assert 0.3 < swapped.float().mean().item() < 0.7  # about half come from the pool
    assert set(shown[swapped, 0, 0, 0].tolist()) <= set(range(4)) | set(range(10, 74))  # past fakes, no others
    again = cycle.ImagePool(4, 2)
    again.draw(first, torch.Generator().manual_seed(0))
    assert torch.equal(again.draw(later, torch.Generator().manual_seed(1)), shown)
    assert torch.equal(cycle.ImagePool(0, 2).draw(later, torch.Generator()), later)  # pool 0: the newest only


def test_an_editing_generator_starts_as_the_identity_and_keeps_white_and_black():
    generator = cycle.ResnetGenerator(8, 1, output="edit")
    torch.nn.init.zeros_(generator.body[-1].weight), torch.nn.init.zeros_(generator.body[-1].bias)
    faces = synthetic_faces(4, 16, seed=3)
    faces[0, :4], faces[0, 4:8] = 0, 255
    translator = cycle.Translator(16, 8, 1, "edit")
    translator.to_b = generator
    assert np.array_equal(editing.translate(translator, faces, True, CPU), faces)


def test_an_editing_translator_with_the_identity_loss_is_warned():
    from facegan.train import translation

    faces, labels = two_domains(8, seed=2)
    noted = {identity: translation.set_up(tiny(output="edit", identity=identity), CPU, faces, labels).notes
             for identity in (0.5, 0.0)}
    assert any("--identity 0" in n for n in noted[0.5]) and not any("--identity 0" in n for n in noted[0.0])


@pytest.mark.parametrize("output", [{"output": "image"}, {"output": "edit", "identity": 0.0},
                                    {"output": "edit", "identity": 0.0, "upconv": "resize"},
                                    {"output": "edit", "identity": 0.0, "keep": 1.0}])
def test_a_tiny_translator_learns_the_colour_shift_and_draws_round_trips(tmp_path, output):
    faces, labels = two_domains(32, seed=1)
    config = tiny(epochs=60, g_lr=1e-3, d_lr=1e-3, **output)
    summary = train(RunPlan(config, RunDir(tmp_path / "run"), None), images=faces, labels=labels)
    translator, _, _ = sample.load_generator(summary["checkpoint"], CPU, "translator")
    plain, red = synthetic_faces(8, 32, seed=9), reddened(synthetic_faces(8, 32, seed=9))  # faces it never saw

    def redness(x):
        return float((x[..., 0].astype(float) - x[..., 2]).mean())

    made_red = editing.translate(translator, plain, True, CPU)
    made_plain = editing.translate(translator, red, False, CPU)
    assert redness(made_red) > redness(plain) + 0.5 * (redness(red) - redness(plain))
    assert redness(made_plain) < redness(red) - 0.5 * (redness(red) - redness(plain))
    rows = RunDir(tmp_path / "run").read_metrics()
    assert rows[-1]["cycle"] < rows[0]["cycle"]
    assert {"loss_d", "d_real"} | ({"identity"} if config.model.family_settings.identity else set()) <= rows[-1].keys()
    grid = Image.open(summary["samples"])
    assert grid.width > 3 * 32 and grid.height > 8 * 32  # input | translated | back, 4 faces of each domain
    if config.model.family_settings.keep:  # the attribute critic learnt to read the domain off real faces
        assert rows[-1]["reader"] < rows[0]["reader"] and "keep" in rows[-1]
        critics = models.build(config.model)[1]
        critics.load_state_dict(final_state(tmp_path / "run")["discriminator"])
        with torch.no_grad():
            shown = torch.from_numpy(np.concatenate([plain, red])).permute(0, 3, 1, 2).float() / 127.5 - 1
            read = critics.reader(shown)[:, 0]
        assert int((read[:8] < 0).sum() + (read[8:] > 0).sum()) >= 14  # of 16 faces it never saw


def test_the_smoothness_penalty_takes_the_grain_out_of_the_change(tmp_path):
    """The colour shift is the same everywhere: what varies from pixel to pixel in a
    translator's change is grain, which model.cycle.smooth makes it pay for."""
    faces, labels = two_domains(32, seed=1)
    plain = synthetic_faces(8, 32, seed=9)
    grain = {}
    for smooth in (0.0, 5.0):
        config = tiny(epochs=30, g_lr=1e-3, d_lr=1e-3, output="edit", identity=0.0, smooth=smooth)
        summary = train(RunPlan(config, RunDir(tmp_path / str(smooth)), None), images=faces, labels=labels)
        translator, _, _ = sample.load_generator(summary["checkpoint"], CPU, "translator")
        change = editing.translate(translator, plain, True, CPU).astype(float) - plain
        grain[smooth] = (np.abs(np.diff(change, axis=1)).mean() + np.abs(np.diff(change, axis=2)).mean()) / np.abs(change).mean()
        assert ("smooth" in RunDir(tmp_path / str(smooth)).read_metrics()[-1]) == bool(smooth)
    print(f"total variation of the change per level changed: {grain[0.0]:.2f} without, {grain[5.0]:.2f} with")
    assert grain[5.0] < 0.8 * grain[0.0]  # measured: 0.18 against 0.27


class InterruptAfter(Observer):
    def __init__(self, step):
        self.step = step

    def on_step(self, step):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("changes", [{}, {"augment": "color,translation,cutout"}, {"keep": 1.0}])
def test_an_interrupted_translator_resumes_bit_for_bit(tmp_path, changes):
    faces, labels = two_domains(16, seed=2)  # 8 of each: 2 steps an epoch

    class Notes(Observer):
        said: list[str] = []

        def on_note(self, message):
            self.said.append(message)

    config = tiny(epochs=3, mirror=True, **changes)
    train(RunPlan(config, RunDir(tmp_path / "straight"), None), Notes(), images=faces, labels=labels)
    assert "domains: no Smiling 8 and Smiling 8 images" in Notes.said
    summary = train(RunPlan(config, RunDir(tmp_path / "cut"), None), InterruptAfter(3), images=faces, labels=labels)
    assert summary["reason"] == "interrupted" and summary["step"] == 3
    train(plan(tmp_path / "cut", resume=True), images=faces, labels=labels)
    straight, cut = final_state(tmp_path / "straight"), final_state(tmp_path / "cut")
    assert_same_training_state(straight, cut)
    assert int(cut["discriminator"]["pool_a.filled"]) == 4  # the pools came back from the checkpoint
    if "augment" in changes:  # the discriminators were shown augmented faces: they learnt something else
        train(RunPlan(tiny(epochs=3, mirror=True), RunDir(tmp_path / "plain"), None), images=faces, labels=labels)
        plain = final_state(tmp_path / "plain")["discriminator"]
        assert plain.keys() == straight["discriminator"].keys()
        assert not all(torch.equal(plain[k], straight["discriminator"][k]) for k in plain)


def test_a_translator_refuses_data_it_cannot_split(tmp_path):
    faces, labels = two_domains(16, seed=3)
    with pytest.raises(FaceganError, match="needs CelebA's attributes"):
        train(RunPlan(tiny(), RunDir(tmp_path / "a"), None))  # the built-in faces have no labels
    with pytest.raises(FaceganError, match="domain 'Smiling' has 2 images"):
        train(RunPlan(tiny(), RunDir(tmp_path / "b"), None), images=faces[:10],
              labels=(np.arange(10) >= 8).astype(np.float32)[:, None])
    with pytest.raises(FaceganError, match="eval_every"):
        train(RunPlan(tiny(eval_every=1), RunDir(tmp_path / "c"), None), images=faces, labels=labels)


def stand_in_celeba(root, count: int = 48, side: int = 72) -> None:
    """A CelebA-layout folder of ``count`` synthetic faces, every second one "Smiling"
    (and reddened): the two domains of a translator between Smiling's faces."""
    faces, labels = two_domains(count, seed=5)
    faces = np.stack([np.asarray(Image.fromarray(f).resize((side, side))) for f in faces])
    (root / "img_align_celeba").mkdir(parents=True)
    rows = []
    for i, face in enumerate(faces):
        Image.fromarray(face).save(root / "img_align_celeba" / f"{i + 1:06d}.jpg", quality=95)
        rows.append(f"{i + 1:06d}.jpg {'1' if labels[i, 0] else '-1'} -1")
    (root / "list_attr_celeba.txt").write_text(f"{count}\nSmiling Male\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def translator_run(tmp_path_factory):
    """A tiny 64 px translator between Smiling's domains, trained through the command line."""
    from facegan.cli import main

    base = tmp_path_factory.mktemp("translator")
    stand_in_celeba(base / "celeba")
    assert main(["train", "--preset", "cycle64", "--domains", "Smiling", "--data", str(base / "celeba"),
                 "--g-width", "8", "--d-width", "8", "--blocks", "1", "--batch-size", "4", "--epochs", "1",
                 "--log-every", "2", "--threads", "1", "--run", str(base / "run")]) == 0
    return base / "run"


def test_edit_writes_edited_faces_for_an_image_and_a_folder(translator_run, tmp_path, capsys):
    from facegan.cli import main

    photo = tmp_path / "face.jpg"
    Image.fromarray(synthetic_faces(1, 100, seed=6)[0][:, 10:90]).save(photo)  # 80 x 100: centre-cropped
    assert main(["edit", str(photo), "--to", "Smiling=1", "--translator", str(translator_run),
                 "--out", str(tmp_path / "smile.png")]) == 0
    said = capsys.readouterr().out
    assert Image.open(tmp_path / "smile.png").size == (64, 64) and "64 px, centre crop" in said
    assert main(["edit", str(photo), "--to", "Smiling=0", "--translator", str(translator_run), "--crop", "none",
                 "--compare", "--out", str(tmp_path / "pair.png")]) == 0
    assert Image.open(tmp_path / "pair.png").size == (128, 64) and "whole image" in capsys.readouterr().out
    folder = tmp_path / "photos"
    (folder / "inner").mkdir(parents=True)
    Image.fromarray(synthetic_faces(1, 40, seed=7)[0]).save(folder / "inner" / "a.png")
    (folder / "b.png").write_bytes(b"not an image")
    assert main(["edit", str(folder), "--to", "Smiling=1", "--translator", str(translator_run),
                 "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert Image.open(tmp_path / "out" / "inner" / "a.png").size == (64, 64)
    assert "skipped" in captured.err and "1 of 2 images" in captured.out


def test_generate_edit_puts_each_face_beside_its_edit(translator_run, tmp_path, capsys):
    from facegan.cli import main

    assert main(["generate", "-n", "2", "--seed", "3", "--out", str(tmp_path / "plain")]) == 0
    assert main(["generate", "-n", "2", "--seed", "3", "--edit", "Smiling=1", "--translator", str(translator_run),
                 "--out", str(tmp_path / "edited")]) == 0
    assert "beside its edit Smiling=1" in capsys.readouterr().out
    for i in range(2):
        plain = np.asarray(Image.open(tmp_path / "plain" / f"{i:06d}.png"))
        pair = np.asarray(Image.open(tmp_path / "edited" / f"{i:06d}.png"))
        assert pair.shape == (64, 128, 3) and np.array_equal(pair[:, :64], plain)
        assert not np.array_equal(pair[:, 64:], plain)


def huge_png(path) -> None:
    """A real PNG whose header claims 20,000 x 20,000 pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("what, message", [
    ("text", "not an image"), ("huge", "decompression bomb"), ("unknown", "unknown attribute Smilin"),
    ("unknowable", "edits Smiling only, not Male"), ("none-shipped", "no shipped translator edits Eyeglasses"),
    ("generator", "holds a generator"), ("missing", "does not exist"), ("jpg-out", "must name a .png"),
])
def test_edit_refuses_in_one_line(what, message, translator_run, tmp_path, capsys):
    from facegan.cli import main

    photo = tmp_path / "face.png"
    Image.fromarray(synthetic_faces(1, 64, seed=8)[0]).save(photo)
    source, out, to, model = str(photo), str(tmp_path / "out.png"), "Smiling=1", ["--translator", str(translator_run)]
    if what == "text":
        photo.write_text("hello")
    elif what == "huge":
        huge_png(photo)
    elif what == "unknown":
        to = "Smilin=1"
    elif what == "unknowable":
        to = "Male=1"
    elif what == "none-shipped":
        to, model = "Eyeglasses=1", []
    elif what == "generator":
        model = ["--translator", "celeba64"]
    elif what == "missing":
        source = str(tmp_path / "nothing.png")
    elif what == "jpg-out":
        out = str(tmp_path / "out.jpg")
    assert main(["edit", source, "--to", to, *model, "--out", out]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_translator_exports_to_safetensors_and_onnx_both_ways(translator_run, tmp_path, capsys):
    from facegan import export
    from facegan.cli import main

    assert main(["export", "--run", str(translator_run), "--out", str(tmp_path / "t.onnx")]) == 0
    said = capsys.readouterr().out
    assert "faces (N, 3, 64, 64)" in said and "to_b and to_a" in said and "onnxruntime matches PyTorch" in said
    translator, config, _ = sample.load_generator(RunDir(translator_run).latest_checkpoint(), CPU, "translator")
    assert export.onnx_difference(tmp_path / "t.onnx", translator, config, None, n=3, seed=4) <= export.ONNX_TOLERANCE
    assert main(["export", "--run", str(translator_run), "--out", str(tmp_path / "t.safetensors")]) == 0
    assert "facegan edit --translator" in capsys.readouterr().out
    photo = tmp_path / "face.png"
    Image.fromarray(synthetic_faces(1, 64, seed=10)[0]).save(photo)
    for source, out in ((translator_run, "from-run.png"), (tmp_path / "t.safetensors", "from-file.png")):
        assert main(["edit", str(photo), "--to", "Smiling=1", "--translator", str(source), "--out",
                     str(tmp_path / out)]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "from-run.png")),
                          np.asarray(Image.open(tmp_path / "from-file.png")))


class RednessReader:
    """A reader of two attributes with a rule one can check by hand: "Smiling" is a red
    face, "Male" a dark one (what metrics.translation asks of a classifier)."""

    names = ["Male", "Smiling"]
    path = Path("redness-reader")

    def read(self, images):
        x = images.astype(float)
        return np.stack([x.mean(axis=(1, 2, 3)) < 60, (x[..., 0] - x[..., 2]).mean(axis=(1, 2)) > 100], 1).astype(
            np.float32)


def test_what_a_translation_changed_is_measured():
    from facegan.metrics import translation

    photos = synthetic_faces(6, 32, seed=11)  # red minus blue: -57 to 89 levels
    red = photos.copy()
    red[..., 0], red[..., 2] = 255, 0  # 255
    figures = translation.measure(photos, red, photos, "Smiling", True, RednessReader(), translation.noisy(photos))
    assert figures["target_before"] == 0 and figures["target_after"] == 1 and figures["other_moved"] == {"Male": 0}
    assert figures["cycle_error"] == 0 and 0.5 < figures["cycle_error_noisy"] < 3
    change = np.abs(red.astype(float) - photos).mean(axis=3)
    assert figures["pixel_change"] == pytest.approx(change.mean(), rel=1e-5)
    assert figures["outside_centre"] == pytest.approx(change[:, translation.border(32)].mean(), rel=1e-5)
    assert translation.border(32).sum() == 32 * 32 - 16 * 16
    back = translation.measure(red, photos, red, "Smiling", False, RednessReader())  # B -> A: Smiling read as 0
    assert back["target_before"] == 0 and back["target_after"] == 1 and "cycle_error_noisy" not in back
    pair = translation.Target.of("Blond_Hair:Black_Hair", True)
    assert (pair.present, pair.absent) == (("Black_Hair",), ("Blond_Hair",))


def test_balancing_gives_both_domains_the_same_mix_of_other_attributes():
    rng = np.random.default_rng(0)
    smiling = rng.random(400) < 0.5
    male = np.where(smiling, rng.random(400) < 0.2, rng.random(400) < 0.7)  # fewer men among the smiling
    labels = np.stack([smiling, male], 1).astype(np.float32)
    in_a, in_b = cycle.domain_of(labels[:, :1], "Smiling")
    a, b = cycle.balanced(labels[:, 1:], in_a, in_b, seed=3)
    assert len(a) == len(b) and labels[a, 1].mean() == labels[b, 1].mean()  # the same share of men in both
    assert not labels[a, 0].any() and labels[b, 0].all() and len(set(a)) == len(a)
    assert np.array_equal(cycle.balanced(labels[:, 1:], in_a, in_b, seed=3)[0], a)  # the same for a seed
    whole = cycle.balanced(labels[:, :0], in_a, in_b, seed=3)
    assert len(whole[0]) == in_a.sum() and len(whole[1]) == in_b.sum()
    with pytest.raises(FaceganError, match="cannot hold a domain's attribute"):
        configure.override(configure.preset("cycle64"), {"domains": "Smiling", "balance": "Male,Smiling"})
    config = configure.override(configure.preset("cycle64"), {"domains": "Blond_Hair:Black_Hair", "balance": "Male"})
    assert models.family_of(config.model).data_attributes(config.model) == ("Blond_Hair", "Black_Hair", "Male")
