"""Make a shipped model: a run's generator as a generator file, evaluated as shipped, with its card's figures.

    python scripts/ship_model.py --checkpoint RUN/checkpoints/step-N.pt --real CACHE64 \
        --classifier classifier.pt --hardware "2 cores of ..." --name celeba64
    python scripts/ship_model.py ... --name celeba64-attr --reader reader.pt --label-n 250   # a conditional model

Stores the weights as fp16 unless that moves some pixel of 256 faces by more than one
level (then fp32), writes src/facegan/pretrained/NAME.safetensors, evaluates that file
exactly as ``facegan evaluate --model NAME --real CACHE64 --n 1000 --classifier
classifier.pt`` (with ``--reader`` and ``--label-n`` for a conditional model) does (so
the card's figures reproduce with that command), and writes
the figures into the file's metadata. The FID floor (real photos against other real
photos at the same N) is ``python benchmarks/eval.py --real CACHE64 --n 1000``'s,
23.67 on the shared subset's 64 px cache (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from facegan import checkpoint, export, generator_file, sample
from facegan.data.cache import open_cache
from facegan.metrics.evaluate import evaluate

FOLDER = Path(__file__).resolve().parents[1] / "src" / "facegan" / "pretrained"


def card_figures(state: checkpoint.TrainingState, evaluation: dict, fid_floor: float, hardware: str) -> dict:
    config = state.config
    data = open_cache(evaluation["reference"])
    card = {
        "data": "the shared CelebA subset (aligned photos, centre crop, 64 px)",
        "images": int(data.manifest["count"]),
        "images_seen": state.step * config["train"]["batch_size"],
        "steps": state.step,
        "training_hours": round(state.elapsed / 3600, 2),
        "hardware": hardware,
        "n": evaluation["n"],
        "fid": round(evaluation["fid"], 2),
        "fid_floor": fid_floor,
        "kid": round(evaluation["kid_mean"], 4),
        "precision": round(evaluation["precision"], 3),
        "recall": round(evaluation["recall"], 3),
        "diversity": round(evaluation["diversity"], 3),
        "face_rate": round(evaluation["face_rate"], 3),
        "classifier_fd": round(evaluation["classifier_fd"], 2),
        "classifier_fd_floor": round(evaluation["classifier_fd_floor"], 2),
        "attributes": {name: {"samples": round(r["samples"], 3), "real": round(r["real_classified"], 3)}
                       for name, r in evaluation["attributes"].items()},
    }
    if config["train"].get("start_from"):  # a second stage: its hours are on top of those of what it started from
        card["started_from"] = Path(config["train"]["start_from"]).name
    if "conditional" in evaluation:  # how often the classifier reads each attribute as asked for
        card["followed"] = {name: round(r["balanced"], 3) for name, r in evaluation["conditional"].items()}
    for path, reader in evaluation.get("readers", {}).items():  # the same, by the independent reader (one)
        card["followed_by_reader"] = {name: round(r["balanced"], 3) for name, r in reader.get("conditional", {}).items()}
        card["reader"] = {"file": Path(path).name, "architecture": reader["architecture"],
                          "trained_on": reader["train_split"],
                          "test_balanced_accuracy": {n: round(a, 3) for n, a in reader["test_balanced_accuracy"].items()}}
    if "label_diversity" in evaluation:
        card["label_diversity"] = [{"labels": row["labels"], "diversity": round(row["diversity"], 3),
                                    **({"real_diversity": round(row["real_diversity"], 3)} if "real_diversity" in row else {})}
                                   for row in evaluation["label_diversity"]]
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--real", required=True, help="the prepared 64 px cache it trained on")
    parser.add_argument("--classifier", required=True, help="facegan train-classifier's classifier")
    parser.add_argument("--hardware", required=True, help="what it trained on, in words")
    parser.add_argument("--reader", default="",
                        help="a conditional model: an independent attribute reader (train-classifier --architecture "
                             "resnet --split val --balanced)")
    parser.add_argument("--label-n", type=int, default=0, help="a conditional model: samples per label set for the "
                                                               "diversity within a label set")
    parser.add_argument("--name", default="celeba64")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--fid-floor", type=float, default=23.67, help="real against real FID at the same N")
    args = parser.parse_args()

    state = checkpoint.TrainingState.load(args.checkpoint)
    generator, config, conditions = sample.load_generator(args.checkpoint, torch.device("cpu"))
    moved = export.half_precision_error(generator, config, conditions, n=256)
    half = moved["max_levels"] <= 1
    out = FOLDER / f"{args.name}.safetensors"
    generator_file.save(generator.state_dict(), config, conditions, out, half=half)
    evaluation = evaluate(out, args.real, args.n, classifier=args.classifier,
                          progress=lambda done, total: print(f"  {done:,}/{total:,}", end="\r", file=sys.stderr),
                          phase=lambda name: print(name, file=sys.stderr), readers=(args.reader,) if args.reader else (),
                          label_n=args.label_n)
    card = card_figures(state, evaluation, args.fid_floor, args.hardware)
    card["precision_check"] = moved
    generator_file.save(generator.state_dict(), config, conditions, out, half=half, card=card)
    print(json.dumps({"wrote": str(out), "bytes": out.stat().st_size, "fp16": half, **card}, indent=1))


if __name__ == "__main__":
    main()
