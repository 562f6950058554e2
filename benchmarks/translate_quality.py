"""Translators on photos they never trained on: did the attribute change, and nothing else?

    python benchmarks/translate_quality.py --data CACHE64 --classifier classifier.pt \
        --checkpoint RUN_OR_FILE [...] [--reader reader.pt ...] [--n 1000] [--kid-n 300] [--grid out.png]

``--data`` is a prepared CelebA cache at the translators' size holding the split labels
(e.g. the whole 64 px cache); only its ``--split`` photos (default test) are used. For
each translator and each direction, the first ``--n`` photos of the source domain are
translated (and translated back), and one JSON line gives ``facegan.metrics.translation``'s
figures as read by the classifier (and by each ``--reader``): the share read as the
target before and after, how far every other attribute's share moved (points), the
mean pixel change (whole face, outside its centre), the cycle error (and after faint
noise on the translation: hidden information), and with
``--kid-n N``, KID of N translated faces against N real photos of the target domain
(``kid``) beside the KID of the untranslated photos against them (``kid_before``).
``--grid``: the first 6 photos of each translator's directions: photo | translated | back.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from facegan import checkpoint, editing, generator_file, sample  # noqa: E402
from facegan import images as imaging  # noqa: E402
from facegan.data.cache import open_cache  # noqa: E402
from facegan.metrics import distances, translation  # noqa: E402
from facegan.metrics.attributes import AttributeClassifier  # noqa: E402
from facegan.models import cycle  # noqa: E402

SPLITS = {"train": 0, "val": 1, "test": 2}
GRID_PHOTOS = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prepared CelebA cache with split labels")
    parser.add_argument("--split", choices=tuple(SPLITS), default="test")
    parser.add_argument("--checkpoint", nargs="+", required=True, help="translators: runs, checkpoints or files")
    parser.add_argument("--classifier", required=True, help="the attribute classifier that reads the faces")
    parser.add_argument("--reader", action="append", default=[], help="another classifier reading them too")
    parser.add_argument("--n", type=int, default=1000, help="photos of each source domain (default 1000)")
    parser.add_argument("--kid-n", type=int, default=0, help="faces for KID (default 0: none)")
    parser.add_argument("--reuse", default="", help="a folder keeping the real photos' Inception features")
    parser.add_argument("--grid", default="", help="write the comparison grid here (.png)")
    parser.add_argument("--card", default="", help="with one checkpoint: write its model card's figures here (.json), "
                                                   "for facegan export --card")
    parser.add_argument("--hardware", default="", help="with --card: what it trained on, in words")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    cache = open_cache(args.data)
    if "split" not in cache.labels or "attributes" not in cache.labels:
        sys.exit(f"{args.data} holds no split labels or attributes: prepare it from a CelebA root")
    chosen = np.flatnonzero(cache.labels["split"] == SPLITS[args.split])
    readers = [AttributeClassifier(p) for p in [args.classifier, *args.reader]]
    inception = None
    if args.kid_n:
        from facegan.metrics.inception import Inception

        inception = Inception(device=device)
    print(json.dumps({"machine": describe(), "data": str(args.data), "split": args.split, "photos": len(chosen)}),
          flush=True)
    blocks: list[np.ndarray] = []
    if args.card and len(args.checkpoint) != 1:
        sys.exit("--card describes one translator: give one --checkpoint")
    card: dict[str, object] = {"data": f"{args.split} split of {Path(args.data).name}", "n": args.n,
                               "kid_n": args.kid_n, "classifier": Path(args.classifier).name,
                               "hardware": args.hardware, "directions": {}}
    for name in args.checkpoint:
        path = sample.find_named(name, "translator")
        translator, config, _ = sample.load_generator(path, device, "translator")
        domains = config.model.family_settings.domains
        in_a, in_b = cycle.domain_of(cache.attribute_columns(cycle.domain_attributes(domains)), domains)
        words = cycle.domain_names(domains)
        for to_b, source, target in ((True, in_a, in_b), (False, in_b, in_a)):
            started = time.perf_counter()
            photos = cache.images[np.intersect1d(chosen, np.flatnonzero(source))[: args.n]]
            moved = editing.translate(translator, photos, to_b, device)
            back = editing.translate(translator, moved, not to_b, device)
            back_from_noisy = editing.translate(translator, translation.noisy(moved), not to_b, device)
            row: dict[str, object] = {"checkpoint": str(path), "domains": domains,
                                      "direction": f"{words[not to_b]} -> {words[to_b]}", "n": len(photos)}
            for reader in readers:
                figures = translation.measure(photos, moved, back, domains, to_b, reader, back_from_noisy)
                key = "" if reader is readers[0] else f"{reader.path.stem}:"
                row.update({f"{key}{k}": rounded(v) for k, v in figures.items()
                            if not key or k in ("target_before", "target_after", "other_moved")})
            if inception is not None:
                real = kept_features(args, inception, cache, np.intersect1d(chosen, np.flatnonzero(target)),
                                     f"{domains}-{words[to_b]}")
                before = kept_features(args, inception, cache, np.intersect1d(chosen, np.flatnonzero(source)),
                                       f"{domains}-{words[not to_b]}")
                made = inception.features(moved[: args.kid_n])
                row["kid"] = distances.kid(made, real, subset_size=len(made))[0]
                row["kid_before"] = distances.kid(before, real, subset_size=len(before))[0]
            row["seconds"] = round(time.perf_counter() - started, 1)
            print(json.dumps(row), flush=True)
            card["directions"][row["direction"]] = {
                **{k: row[k] for k in ("n", "target_before", "target_after", "pixel_change", "outside_centre",
                                       "cycle_error", "cycle_error_noisy", "kid", "kid_before") if k in row},
                "max_other_moved": round(max(abs(v) for v in row["other_moved"].values()), 2),
                "other_moved": row["other_moved"]}
            blocks.append(imaging.columns([photos[:GRID_PHOTOS], moved[:GRID_PHOTOS], back[:GRID_PHOTOS]]))
    if args.card:
        if not generator_file.is_generator_file(path):
            state = checkpoint.TrainingState.load(path)
            card.update(steps=state.step, training_hours=round(state.elapsed / 3600, 2),
                        images_seen=state.step * state.config["train"]["batch_size"])
        Path(args.card).write_text(json.dumps(card, indent=1) + "\n")
        print(json.dumps({"card": args.card}))
    if args.grid:
        imaging.save_png(np.concatenate(blocks), args.grid)
        print(json.dumps({"grid": args.grid, "rows": f"{GRID_PHOTOS} photos per translator and direction, in the "
                                                      "order above", "columns": "photo | translated | back"}))


def rounded(value):
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(value, 4)


def kept_features(args: argparse.Namespace, inception, cache, index: np.ndarray, part: str) -> np.ndarray:
    """Inception features of the first --kid-n photos at ``index``, kept in --reuse if given."""
    index = index[: args.kid_n]
    if args.reuse:
        kept = Path(args.reuse) / f"{Path(args.data).resolve().name}-{args.split}-{args.kid_n}-{part}.npy"
        if kept.is_file():
            return np.load(kept)
    features = inception.features(cache.images[index])
    if args.reuse:
        Path(args.reuse).mkdir(parents=True, exist_ok=True)
        np.save(kept, features)
    return features


if __name__ == "__main__":
    main()
