"""The conditional GAN: attribute requests, the labels' joint distribution, the
conditioned networks, training one for real, and the command line around it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import configure
from facegan import models, sample
from facegan.cli import main
from facegan.conditions import Conditions, attribute_names, requests
from facegan.data.prepare import prepare
from facegan.errors import FaceganError
from facegan.metrics.attributes import AttributeClassifier, train_classifier
from facegan.metrics.evaluate import conditional_accuracy, label_diversity
from facegan.data.cache import open_cache
from facegan.train.run import plan as run_plan
from facegan.train.generation import twin_shares
from facegan.train.steps import STEPS, Objective
from facegan.train.trainer import Observer, train
from tests.conftest import tiny_config, tiny_plan
from tests.test_attributes import labelled_celeba
from tests.test_evaluate import needs_inception

CPU = torch.device("cpu")


def test_requests_are_parsed_and_bad_ones_refused():
    assert requests("Male=1, Smiling=0,Eyeglasses=0") == {"Male": 1, "Smiling": 0, "Eyeglasses": 0}
    assert attribute_names("Male,Young") == ("Male", "Young") and attribute_names("") == ()
    for text, message in [("Male=2", "Male must be 0 or 1, not '2'"), ("Male=yes", "must be 0 or 1"),
                          ("Male", "'Male' is not NAME=0 or NAME=1"), ("Moustache=1", "did you mean Mustache?"),
                          ("Male=1,Male=0", "Male is given twice"), (",", "names no attribute")]:
        with pytest.raises(FaceganError, match=message):
            requests(text)
    with pytest.raises(FaceganError, match="unknown attribute Beard"):
        attribute_names("Male,Beard")
    with pytest.raises(FaceganError, match="Male named twice"):
        attribute_names("Male,Male")


def test_unnamed_attributes_are_drawn_from_the_joint_distribution():
    """A and B always agree (70% both on), C is a coin toss: asking for A=1 must give
    B=1, never the 0.7 * 0.7 an attribute-by-attribute draw would give."""
    rng = np.random.default_rng(0)
    a = rng.random(1000) < 0.7
    labels = np.stack([a, a, rng.random(1000) < 0.5], 1)
    conditions = Conditions.of(("Male", "Smiling", "Eyeglasses"), labels)
    assert conditions.share("Male") == pytest.approx(a.mean())
    drawn = conditions.sample(4000, seed=1)
    assert drawn.dtype == np.float32 and drawn.shape == (4000, 3)
    assert np.array_equal(drawn[:, 0], drawn[:, 1])
    assert abs(drawn[:, 0].mean() - a.mean()) < 0.03
    asked = conditions.sample(500, seed=2, wanted={"Male": 1})
    assert asked[:, 0].all() and asked[:, 1].all() and 0.4 < asked[:, 2].mean() < 0.6
    # a combination no training image had: the rest from their own shares, the asked values kept
    assert conditions.matching({"Male": 1, "Smiling": 0}) == 0
    unseen = conditions.sample(500, seed=3, wanted={"Male": 1, "Smiling": 0})
    assert unseen[:, 0].all() and not unseen[:, 1].any() and 0.4 < unseen[:, 2].mean() < 0.6
    assert np.array_equal(conditions.sample(50, seed=4), conditions.sample(50, seed=4))
    again = Conditions.from_state(conditions.state())
    assert again.names == conditions.names and np.array_equal(again.rows, conditions.rows)
    assert np.array_equal(again.counts, conditions.counts) and again.counts.sum() == 1000
    with pytest.raises(FaceganError, match="not trained on Young; it knows Male, Smiling, Eyeglasses"):
        conditions.sample(2, seed=0, wanted={"Young": 1})


def test_conditioned_networks_depend_on_their_labels():
    config = tiny_config("cfaces64", attributes="Male,Smiling,Eyeglasses")
    torch.manual_seed(0)
    generator, discriminator = models.build(config.model)
    generator.eval()
    z = torch.randn(4, config.model.z_dim)
    off, on = torch.zeros(4, 3), torch.zeros(4, 3)
    on[:, 0] = 1
    images = generator(z, off)
    assert images.shape == (4, 3, 16, 16)
    assert not torch.allclose(images, generator(z, on))
    assert not torch.allclose(discriminator(images, off), discriminator(images, on))
    # the projection: D's logit moves with the labels exactly by <embed(s_on) - embed(s_off), phi(x)>
    features = discriminator.body[:-1](images).sum(dim=(2, 3))
    moved = discriminator(images, on) - discriminator(images, off)
    assert torch.allclose(moved, (features * 2 * discriminator.embed.weight[:, 0]).sum(1), atol=1e-5)
    # the unconditional networks keep their layout and parameters
    plain_g, plain_d = models.build(tiny_config("cfaces64", attributes="", attribute_loss=0.0).model)
    assert not hasattr(plain_d, "embed") and plain_g.body[0].in_channels == config.model.z_dim
    assert generator.body[0].in_channels == config.model.z_dim + 3


def test_the_attribute_head_reads_the_projection_features():
    config = tiny_config("cfaces64", attributes="Male,Smiling,Eyeglasses")
    torch.manual_seed(0)
    _, discriminator = models.build(config.model, attribute_head=True)
    images, labels = torch.randn(4, 3, 16, 16), torch.ones(4, 3)
    logits, attributes = discriminator(images, labels, attributes=True)
    assert torch.equal(logits, discriminator(images, labels)) and attributes.shape == (4, 3)
    features = discriminator.body[:-1](images).sum(dim=(2, 3))
    assert torch.allclose(attributes, discriminator.read_attributes(features))
    assert not hasattr(models.build(config.model)[1], "read_attributes")
    # in training the head reads the images as they are, while the realism logit sees them augmented
    torch.manual_seed(1)
    judged, read = Objective(augment=("translation", "cutout"), attribute_loss=1.0).judge(discriminator, images, labels)
    assert torch.equal(read, attributes) and not torch.allclose(judged, logits)
    with pytest.raises(FaceganError, match="attribute_loss needs a conditional model"):
        tiny_config("cfaces64", attributes="", attribute_loss=1.0)
    with pytest.raises(FaceganError, match="attribute_loss must be between 0 and 1,000, not -1"):
        tiny_config("cfaces64", attribute_loss=-1.0)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_the_attribute_head_learns_from_real_images_only(step):
    """D's head learns to read the real batch's labels, never the fakes': two steps that
    differ only in G's latents change D's body differently and its head identically.
    G, in turn, is pushed by the head's reading of its fakes."""
    config = tiny_config("cfaces64", attributes="Male,Smiling", augment="")
    real, labels = torch.rand(8, 3, 16, 16) * 2 - 1, (torch.rand(8, 2) < 0.5).float()

    def one_step(seed: int, weight: float):
        torch.manual_seed(0)
        generator, discriminator = models.build(config.model, attribute_head=weight > 0)
        optimisers = [torch.optim.Adam(net.parameters(), 1e-3) for net in (generator, discriminator)]
        torch.manual_seed(seed)
        figures = STEPS[step](generator, discriminator, *optimisers, real, torch.randn(8, config.model.z_dim),
                              Objective(attribute_loss=weight), labels=labels)
        return generator, discriminator, figures

    _, d1, figures = one_step(1, 1.0)
    _, d2, _ = one_step(2, 1.0)
    assert {"attr_real", "attr_fake"} <= set(figures)
    assert torch.equal(d1.read_attributes.weight, d2.read_attributes.weight)
    assert not torch.equal(d1.body[0].weight, d2.body[0].weight)
    g_with, _, _ = one_step(1, 1.0)
    g_without, _, plain = one_step(1, 0.0)  # the same networks: the head is built last
    # (in the thesis step both gradients are taken at the same weights, so there only the
    # head's reading of the fakes can tell the two generators apart)
    assert "attr_real" not in plain
    assert not torch.equal(g_with.body[0].weight, g_without.body[0].weight)


@pytest.mark.parametrize("step", sorted(STEPS))
def test_the_twin_reader_learns_from_fakes_and_cancels_easy_reading(step):
    """attribute_twin (TAC-GAN): D's second reader learns the labels G's fakes were made
    for, the head still only the real images'; and G pays the head's error minus the
    twin's, so where the twin reads the fakes exactly as the head does the attribute term
    gives G nothing."""
    config = tiny_config("cfaces64", attributes="Male,Smiling", augment="", attribute_twin=1.0)
    assert config.train.attribute_heads == 2
    real, labels = torch.rand(8, 3, 16, 16) * 2 - 1, (torch.rand(8, 2) < 0.5).float()

    def one_step(seed: int, weight: float, twin_as_head: bool = False, share: float | tuple[float, ...] = 1.0):
        torch.manual_seed(0)
        generator, discriminator = models.build(config.model, attribute_head=2)
        if twin_as_head:
            with torch.no_grad():
                for p in (discriminator.read_attributes.weight, discriminator.read_attributes.bias):
                    p[2:] = p[:2]
        optimisers = [torch.optim.Adam(net.parameters(), 1e-3) for net in (generator, discriminator)]
        torch.manual_seed(seed)
        objective = Objective(attribute_loss=weight, attribute_twin=share)
        figures = STEPS[step](generator, discriminator, *optimisers, real, torch.randn(8, config.model.z_dim),
                              objective, labels=labels)
        return generator, discriminator, figures

    _, d1, figures = one_step(1, 1.0)
    _, d2, _ = one_step(2, 1.0)
    assert d1.read_attributes.out_features == 4 and {"attr_real", "attr_fake", "attr_twin"} <= set(figures)
    assert torch.equal(d1.read_attributes.weight[:2], d2.read_attributes.weight[:2])  # the head: real images only
    assert not torch.equal(d1.read_attributes.weight[2:], d2.read_attributes.weight[2:])  # the twin: the fakes
    if step == "thesis":  # both losses from one pass at the same weights: head == twin leaves G's step plain
        g_plain, _, _ = one_step(1, 0.0)  # no attribute term at all
        for share in (1.0, (1.0, 1.0)):
            g_twin, _, _ = one_step(1, 1.0, twin_as_head=True, share=share)
            for a, b in zip(g_twin.parameters(), g_plain.parameters()):
                torch.testing.assert_close(a, b)
        g_male, _, _ = one_step(1, 1.0, twin_as_head=True, share=(1.0, 0.0))  # Smiling keeps the head's pull
        assert not all(torch.equal(a, b) for a, b in zip(g_male.parameters(), g_plain.parameters()))
    with pytest.raises(FaceganError, match="attribute_twin needs train.attribute_loss"):
        tiny_config("cfaces64", attribute_loss=0.0, attribute_twin=1.0)
    with pytest.raises(FaceganError, match="attribute_twin must be between 0 and 1"):
        tiny_config("cfaces64", attribute_twin=2.0)


def test_the_twin_can_cancel_some_attributes_only():
    """train.twin_attributes: G's term subtracts the twin's error of the named attributes
    only; the others keep the head's full pull."""
    config = tiny_config("cfaces64", attributes="Male,Smiling,Young", augment="", attribute_twin=0.5,
                         twin_attributes="Young,Male")
    assert twin_shares(config.train, config.model) == (0.5, 0.0, 0.5)  # in model.attributes' order
    assert twin_shares(tiny_config("cfaces64", attributes="Male,Smiling", attribute_twin=0.5).train,
                       config.model) == 0.5
    head, twin = torch.tensor(0.7), torch.tensor([0.2, 0.4, 0.6])
    objective = Objective(attribute_loss=1.0, attribute_twin=(0.5, 0.0, 0.5))
    assert objective.twin and not Objective(attribute_loss=1.0, attribute_twin=(0.0, 0.0)).twin
    torch.testing.assert_close(objective.g_attribute_error(head, twin), torch.tensor(0.7 - (0.1 + 0.3) / 3))
    torch.testing.assert_close(objective.d_attribute_error(head, twin), torch.tensor(0.7 + 0.4))  # every attribute
    torch.testing.assert_close(Objective(attribute_loss=1.0, attribute_twin=0.5).g_attribute_error(head, twin),
                               torch.tensor(0.7 - 0.5 * 0.4))
    with pytest.raises(FaceganError, match="Eyeglasses not in model.attributes"):
        tiny_config("cfaces64", attributes="Male,Smiling", attribute_twin=1.0, twin_attributes="Male,Eyeglasses")
    with pytest.raises(FaceganError, match="twin_attributes needs train.attribute_twin"):
        tiny_config("cfaces64", attributes="Male,Smiling", twin_attributes="Male")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A tiny CGAN on faces whose Male images have a dark top half, trained for real;
    the projection alone (no attribute loss) carries the labels to G."""
    base = tmp_path_factory.mktemp("conditional")
    labels = labelled_celeba(base / "celeba")
    prepare(base / "celeba", base / "cache", 16)
    plan = tiny_plan(base / "run", "cfaces64", attributes="Male,Smiling", data=str(base / "cache"), epochs=10,
                     g_width=16, d_width=16, attribute_loss=0.0)
    summary = train(plan)
    return base, labels, summary


def top_minus_bottom(images: np.ndarray) -> float:
    return float(images[:, :8].astype(float).mean() - images[:, 8:].astype(float).mean())


def test_a_tiny_conditional_model_learns_the_attribute_it_is_given(conditional_run):
    base, labels, summary = conditional_run
    assert summary["reason"] == "finished" and summary["step"] == 10 * 25
    state = torch.load(summary["checkpoint"], weights_only=True)
    assert state["conditions"]["names"] == ["Male", "Smiling"]
    assert sum(state["conditions"]["counts"]) == 400
    generator, config, conditions = sample.load_generator(summary["checkpoint"], CPU)
    assert config.model.attributes == "Male,Smiling" and conditions.share("Male") == pytest.approx(labels[:, 0].mean())
    z = sample.latents(64, generator.z_dim, 1)
    contrast = {}
    for value in (0, 1):
        asked = conditions.sample(64, 1, {"Male": value})
        contrast[value] = top_minus_bottom(sample.generate(generator, 64, 1, CPU, labels=asked, z=z))
    # real: light top for Male=0 (about +70), dark top for Male=1 (about -70); untrained: both about 0
    assert contrast[0] - contrast[1] > 10, contrast


def test_a_tiny_model_with_the_attribute_loss_learns_and_reads_its_attribute(conditional_run, tmp_path):
    base, _, _ = conditional_run
    plan = tiny_plan(tmp_path / "run", "cfaces64", attributes="Male,Smiling", data=str(base / "cache"), epochs=10,
                     g_width=16, d_width=16, log_every=25)  # the preset's attribute loss
    summary = train(plan)
    rows = plan.run.read_metrics()
    # the head learns to read Male (Smiling is a coin toss no picture shows: it stays near log 2)
    assert rows[-1]["attr_real"] < rows[0]["attr_real"] - 0.1, [r["attr_real"] for r in rows]
    generator, _, conditions = sample.load_generator(summary["checkpoint"], CPU)
    z = sample.latents(64, generator.z_dim, 1)
    contrast = [top_minus_bottom(sample.generate(generator, 64, 1, CPU, labels=conditions.sample(64, 1, {"Male": v}),
                                                 z=z)) for v in (0, 1)]
    assert contrast[0] - contrast[1] > 10, contrast


def test_a_conditional_run_resumes_where_it_stopped(conditional_run, tmp_path):
    base, _, _ = conditional_run
    plan = tiny_plan(tmp_path / "run", "cfaces64", attributes="Male,Smiling", data=str(base / "cache"), epochs=1,
                     max_steps=10)
    assert train(plan)["step"] == 10
    again = run_plan(tmp_path / "run", overrides={"max_steps": 0})
    assert again.resume_from.name == "step-00000010.pt"
    resumed = train(again)
    assert resumed["step"] == 25 and resumed["reason"] == "finished"
    assert "conditions" in torch.load(resumed["checkpoint"], weights_only=True)


def test_generate_asks_for_attributes_and_varies_one(conditional_run, tmp_path, capsys):
    base, _, _ = conditional_run
    run = str(base / "run")
    assert main(["generate", "--run", run, "--attr", "Male=1", "-n", "6", "--out", str(tmp_path / "men.png")]) == 0
    out = capsys.readouterr().out
    assert "6 faces" in out and "Male=1; Smiling drawn as in the training data" in out
    assert main(["generate", "--run", run, "--vary", "Male", "-n", "5", "--out", str(tmp_path / "vary.png")]) == 0
    assert "Male=0 (first row)" in capsys.readouterr().out
    grid = np.asarray(Image.open(tmp_path / "vary.png"))
    assert grid.shape == (2 * 18 + 2, 5 * 18 + 2, 3)  # two rows of five 16 px faces, 2 px apart
    assert main(["generate", "--run", run, "--vary", "Male", "-n", "3", "--out", str(tmp_path / "folder")]) == 0
    assert len(list((tmp_path / "folder").glob("*.png"))) == 6
    # no --attr: not an error; the attributes are drawn, and the user is told
    assert main(["generate", "--run", run, "-n", "2", "--out", str(tmp_path / "any.png")]) == 0
    assert "no --attr given: drawing Male, Smiling as the training images have them" in capsys.readouterr().err


def test_generate_refuses_bad_attribute_requests(conditional_run, tmp_path, capsys):
    base, _, _ = conditional_run
    train(tiny_plan(tmp_path / "plain", epochs=1))
    conditional, plain = str(base / "run"), str(tmp_path / "plain")
    cases = [
        ([conditional, "--attr", "Moustache=1"], "unknown attribute Moustache (did you mean Mustache?)"),
        ([conditional, "--attr", "Male=2"], "Male must be 0 or 1, not '2'"),
        ([conditional, "--attr", "Male=1,Eyeglasses=0"], "not trained on Eyeglasses; it knows Male, Smiling"),
        ([conditional, "--vary", "Young"], "not trained on Young"),
        ([conditional, "--vary", "Male", "--attr", "Male=1"], "--vary Male cannot also be fixed by --attr"),
        ([plain, "--attr", "Male=1"], "is an unconditional model: it takes no --attr or --vary"),
        ([plain, "--vary", "Male"], "is an unconditional model"),
    ]
    for argv, message in cases:
        assert main(["generate", "--run", *argv, "--out", str(tmp_path / "x.png")]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


def test_conditional_training_needs_celeba_labels(tmp_path, capsys):
    with pytest.raises(FaceganError, match="needs CelebA's attributes"):
        train(tiny_plan(tmp_path / "run", "cfaces64"))
    assert main(["train", "--preset", "cfaces64", "--attributes", "Male,Beard", "--run", str(tmp_path / "r")]) == 2
    assert "unknown attribute Beard" in capsys.readouterr().err
    with pytest.raises(FaceganError, match=r"model.attributes needs a conditional family \(dcgan, projected\), not thesis"):
        configure.override(configure.preset("thesis128"), {"attributes": "Male"})


class PaintedFaces(torch.nn.Module):
    """A stand-in generator that paints the fixture's Male cue (a dark top half) when
    asked for Male, or, with ``obedient=False``, on a coin toss whatever it is asked."""

    output_range = (-1.0, 1.0)

    def __init__(self, obedient: bool):
        super().__init__()
        self.z_dim, self.obedient = 8, obedient

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        male = labels[:, 0] if self.obedient else (z[:, 0] > 0).float()
        images = torch.rand(len(z), 3, 16, 16, generator=torch.Generator().manual_seed(len(z))) - 0.5
        images[:, :, :8] = (0.7 - 1.4 * male)[:, None, None, None]
        return images


def test_conditional_accuracy_scores_obedience_not_base_rates(conditional_run, tmp_path):
    """A generator that paints what it is asked scores 1 on every reading; one that
    ignores the request scores a balanced 0.5, though its plain accuracy can look fine."""
    base, _, summary = conditional_run
    classifier = tmp_path / "classifier.pt"
    train_classifier(open_cache(base / "cache"), classifier, ("Male", "Smiling"), epochs=6, batch_size=32)
    reader = AttributeClassifier(classifier)
    _, _, conditions = sample.load_generator(summary["checkpoint"], CPU)
    scores = {}
    for obedient in (True, False):
        generator = PaintedFaces(obedient)
        asked = conditions.sample(400, 1)
        fakes = sample.generate(generator, 400, 1, CPU, labels=asked)
        scores[obedient] = conditional_accuracy(generator, conditions, [reader], asked, [reader.read(fakes)], 0, CPU,
                                                [{"Male": 0.97, "Smiling": 0.5}])[0]["Male"]
    perfect, ignoring = scores[True], scores[False]
    assert perfect["accuracy"] > 0.97 and perfect["asked_1"] > 0.97 and perfect["asked_0"] > 0.97
    assert abs(ignoring["asked_1"] - 0.5) < 0.1 and abs(ignoring["asked_0"] - 0.5) < 0.1
    assert ignoring["balanced"] == pytest.approx((ignoring["asked_1"] + ignoring["asked_0"]) / 2)
    assert perfect["real_agreement"] == 0.97


@needs_inception
def test_evaluate_reports_conditional_accuracy(conditional_run, tmp_path, capsys, monkeypatch):
    base, _, _ = conditional_run
    monkeypatch.setenv("FACEGAN_CACHE", str(tmp_path / "fgcache"))
    classifier, other = tmp_path / "classifier.pt", tmp_path / "resnet.pt"
    assert main(["train-classifier", "--data", str(base / "cache"), "--out", str(classifier),
                 "--attributes", "Male", "--epochs", "1"]) == 0
    assert main(["train-classifier", "--data", str(base / "cache"), "--out", str(other), "--architecture", "resnet",
                 "--attributes", "Male,Smiling", "--epochs", "1", "--batch-size", "32"]) == 0
    assert main(["evaluate", "--run", str(base / "run"), "--real", str(base / "cache"), "--n", "8",
                 "--classifier", str(classifier), "--reader", str(other), "--label-n", "4",
                 "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "conditioned on Male, Smiling" in out and "conditional accuracy" in out
    assert f"read by {other} (resnet, trained on the train split)" in out and "diversity within a label set" in out
    report = json.loads(Path(tmp_path / "e.json").read_text())
    assert report["conditioned_on"] == ["Male", "Smiling"]
    assert set(report["conditional"]) == {"Male"}  # Smiling is not read by this classifier
    assert set(report["conditional"]["Male"]) == {"accuracy", "asked_1", "asked_0", "balanced", "real_agreement"}
    second = report["readers"][str(other)]
    assert set(second["conditional"]) == {"Male", "Smiling"} and set(second["attributes"]) == {"Male", "Smiling"}
    assert len(report["label_diversity"]) == 4  # the four label sets of two attributes, most common first
    shares = [row["share"] for row in report["label_diversity"]]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(1)
    labels = open_cache(base / "cache").attribute_columns(("Male", "Smiling"))
    for row in report["label_diversity"]:  # photos of a set measured wherever the cache has 4 of them
        sharing = (labels == [row["labels"]["Male"], row["labels"]["Smiling"]]).all(axis=1).sum()
        assert ("real_diversity" in row) == (sharing >= 4), (row, sharing)
    assert "photos of this set" in out
    # each set's photo features are kept beside the cache, for the next evaluation
    kept = list((base / "cache").glob("inception-4-*.npy"))
    assert len(kept) == sum("real_diversity" in row for row in report["label_diversity"]), kept
    # refused in one line: readers without the classifier, label sets of an unconditional model
    assert main(["evaluate", "--run", str(base / "run"), "--real", str(base / "cache"), "--n", "8",
                 "--reader", str(other)]) == 2
    assert "give --classifier too" in capsys.readouterr().err


class PaintedByLabel(torch.nn.Module):
    """A generator whose faces differ with z (``varied``) or are one face per label set."""

    output_range = (-1.0, 1.0)

    def __init__(self, varied: bool):
        super().__init__()
        self.z_dim, self.varied = 8, varied

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        seeds = z[:, 0] if self.varied else labels @ torch.tensor([1.0, 2.0])
        images = torch.stack([torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(int(1000 * s) % 2**31))
                              for s in seeds]) * 2 - 1
        return images


@needs_inception
def test_diversity_within_a_label_set_finds_one_face_per_label(conditional_run):
    """Samples that share labels but differ with z keep a diversity near photos'; a
    generator that draws one face per label set scores about 0 on every set."""
    from facegan.metrics.inception import Inception

    base, _, summary = conditional_run
    _, _, conditions = sample.load_generator(summary["checkpoint"], CPU)
    inception = Inception(None, CPU)
    real = inception.features(open_cache(base / "cache").images[:16])
    varied = label_diversity(PaintedByLabel(True), conditions, inception, real, 8, 0, CPU, sets=2)
    collapsed = label_diversity(PaintedByLabel(False), conditions, inception, real, 8, 0, CPU, sets=2)
    assert [row["labels"] for row in varied] == [row["labels"] for row in collapsed]
    assert all(row["diversity"] < 0.01 for row in collapsed), collapsed  # identical faces (to rounding)
    assert all(row["diversity"] > 0.3 for row in varied), varied
    assert all("real_diversity" not in row for row in varied)  # no photos given, no ceiling
    # photos sharing a set give its ceiling; a set with fewer than n photos gets none
    images = open_cache(base / "cache").images[:16]
    first_set_only = np.repeat(conditions.rows[np.argmax(conditions.counts)][None], len(images), axis=0)
    ceiling = label_diversity(PaintedByLabel(True), conditions, inception, real, 8, 0, CPU, sets=2,
                              photos=(images, first_set_only))
    assert 0.5 < ceiling[0]["real_diversity"] < 2 and "real_diversity" not in ceiling[1], ceiling
    assert [row["diversity"] for row in ceiling] == [row["diversity"] for row in varied]


def test_the_mode_seeking_term_pairs_labels_and_pushes_paired_faces_apart():
    """mode_seeking: the second half of the fakes is made for the first half's labels,
    and G's penalty, minimised alone, drives the paired faces apart."""
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    seeking = Objective(mode_seeking=1.0)
    paired = seeking.fake_labels(labels)
    assert torch.equal(paired[:2], labels[:2]) and torch.equal(paired[2:4], labels[:2]) and torch.equal(paired[4], labels[4])
    assert Objective().fake_labels(labels) is labels  # off: the real batch's labels, as before
    torch.manual_seed(0)
    generator = models.build(tiny_config("cfaces64", attributes="Male,Smiling").model)[0]
    optimiser = torch.optim.Adam(generator.parameters(), lr=1e-3)
    z = torch.randn(16, generator.z_dim)
    made_for = seeking.fake_labels(torch.randint(0, 2, (16, 2)).float())
    ratios = []
    for _ in range(20):
        ratio = seeking.mode_seeking_ratio(generator(z, made_for), z)
        optimiser.zero_grad()
        seeking.seeking_penalty(ratio).backward()
        optimiser.step()
        ratios.append(float(ratio.detach()))
    assert ratios[-1] > 1.5 * ratios[0], ratios


@pytest.mark.parametrize("setting, value, figure", [("mode_seeking", 1.0, "ms"), ("attribute_twin", 0.5, "attr_twin")])
def test_a_run_with_a_term_on_logs_its_figure_and_resumes(conditional_run, tmp_path, setting, value, figure):
    base, _, _ = conditional_run
    plan = tiny_plan(tmp_path / "run", "cfaces64", attributes="Male,Smiling", data=str(base / "cache"), epochs=1,
                     max_steps=4, log_every=2, **{setting: value})
    assert train(plan)["step"] == 4
    rows = [r for r in plan.run.read_metrics() if "loss_g" in r]
    assert len(rows) == 2 and all(r[figure] > 0 for r in rows)
    resumed = train(run_plan(tmp_path / "run", overrides={"max_steps": 6}))
    assert resumed["step"] == 6


@pytest.mark.parametrize("preset", ["cfaces64", "cfast64"])
def test_an_unconditional_generator_made_conditional_draws_as_before(preset):
    """from_unconditional: the conditional copy of a plain generator (batch norms with
    their own scales and statistics, not the init's) draws exactly what it drew, for any
    labels, in training and in eval mode; a wider network does not fit."""
    from facegan.models.conditioning import from_unconditional

    plain_config = tiny_config(preset, resolution=32, attributes="", attribute_loss=0.0)
    torch.manual_seed(0)
    plain, _ = models.build(plain_config.model)
    with torch.no_grad():
        for module in plain.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.2, 0.2), module.running_var.uniform_(0.5, 2)
    conditional, _ = models.build(tiny_config(preset, resolution=32, attributes="Male,Smiling").model)
    conditional.load_state_dict(from_unconditional(conditional, plain.state_dict()))
    z, labels = torch.randn(6, plain.z_dim), torch.tensor([[0.0, 0], [1, 0], [0, 1], [1, 1], [1, 0], [0, 1]])
    for mode in ("train", "eval"):
        plain.train(mode == "train"), conditional.train(mode == "train")
        assert torch.allclose(conditional(z, labels), plain(z), atol=1e-6), mode
    trained = conditional.state_dict()
    conditional.load_state_dict({k: v + 0.1 if ".gamma.weight" in k else v for k, v in trained.items()})
    assert not torch.allclose(conditional(z, labels), plain(z), atol=1e-3)  # the labels' terms do act
    wider, _ = models.build(tiny_config(preset, resolution=32, attributes="Male", g_width=16).model)
    with pytest.raises((KeyError, ValueError)):
        from_unconditional(wider, plain.state_dict())


def test_a_conditional_run_starts_from_an_unconditional_one(conditional_run, tmp_path):
    """train.start_from an unconditional run of the same network: the note says how it
    started; one of another width is refused by name."""
    base, _, _ = conditional_run
    plain = train(tiny_plan(tmp_path / "plain", "faces64", data=str(base / "cache"), max_steps=2, g_width=16,
                            d_width=16))
    seen = []

    class Notes(Observer):
        def on_note(self, message: str) -> None:
            seen.append(message)

    plan = tiny_plan(tmp_path / "cond", "cfaces64", attributes="Male,Smiling", data=str(base / "cache"), g_width=16,
                     d_width=16, max_steps=2, start_from=str(tmp_path / "plain"))
    assert train(plan, Notes())["step"] == 2
    assert any("made conditional (the labels' terms start at zero)" in note for note in seen), seen
    generator, _, conditions = sample.load_generator(plain["checkpoint"], CPU)
    assert generator.conditions == 0 and conditions is None
    with pytest.raises(FaceganError, match="not this run's"):
        train(tiny_plan(tmp_path / "wide", "cfaces64", attributes="Male", data=str(base / "cache"), g_width=32,
                        d_width=16, max_steps=1, start_from=str(tmp_path / "plain")))


def test_the_shipped_conditional_model_takes_attributes_without_training(tmp_path, capsys):
    """celeba64-attr from a fresh install: --attr and --vary work, a changed label changes
    the face while different latents with the same labels give different faces, and
    `facegan models` prints its card's reader accuracy and diversity within a label set."""
    from facegan import generator_file, pretrained

    path = pretrained.path("celeba64-attr")
    card = generator_file.card(path)
    assert set(card["followed_by_reader"]) >= {"Male", "Smiling", "Eyeglasses", "Blond_Hair", "Black_Hair"}
    assert card["started_from"] == "celeba64" and len(card["label_diversity"]) == 4
    assert main(["generate", "--model", "celeba64-attr", "--attr", "Male=1,Smiling=0", "-n", "4", "--seed", "3",
                 "--out", str(tmp_path / "men.png")]) == 0
    assert main(["generate", "--model", "celeba64-attr", "--vary", "Eyeglasses", "-n", "4", "--seed", "3",
                 "--out", str(tmp_path / "glasses.png")]) == 0
    grid = np.asarray(Image.open(tmp_path / "glasses.png")).astype(np.float32)
    side = (grid.shape[1] - 2) // 4 - 2  # a 4-column grid with 2-pixel gaps
    faces = [grid[2 + r * (side + 2): 2 + r * (side + 2) + side, 2 + c * (side + 2): 2 + c * (side + 2) + side]
             for r in range(2) for c in range(4)]
    assert side == 64 and grid.shape[0] == 2 + 2 * (side + 2)
    without, with_ = faces[:4], faces[4:]
    assert all(np.abs(a - b).mean() > 2 for a, b in zip(without, with_))  # asking for glasses changes each face
    assert min(np.abs(a - b).mean() for i, a in enumerate(without) for b in without[i + 1:]) > 10  # other people
    capsys.readouterr()
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "celeba64-attr: projected, 64 px, conditional on Male," in listed
    assert "read as asked for by an independent reader (balanced): Male" in listed
    assert "diversity within a label set" in listed and "starting from celeba64" in listed
