"""How fast D's attribute head can learn to read CelebA attributes, under each DiffAugment policy.

    python benchmarks/attribute_head.py --data CACHE            # a prepared CelebA cache
    python benchmarks/attribute_head.py --data CACHE --variants none all --steps 300

The attribute loss of a conditional model (``train.attribute_loss``) is only as useful
as D's head is at reading attributes. This trains the discriminator of a preset (with
its attribute head) on the attribute task alone, no GAN, with the preset's optimiser
settings, on the cache's train split, showing it the images through each variant's
augmentation. For each variant it prints a JSON line: the head's mean binary
cross-entropy over the last 50 steps (against the base rates' entropy: what a head that
reads nothing scores) and its accuracy per attribute on test-split images as they are.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from facegan import configure
from facegan import models
from facegan.conditions import attribute_names
from facegan.data.cache import open_cache
from facegan.metrics.attributes import TEST, TRAIN, as_input
from facegan.train import augment

VARIANTS = {"none": (), "color": ("color",), "translation": ("translation",), "cutout": ("cutout",),
            "all": ("color", "translation", "cutout")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a prepared CelebA cache at the preset's resolution")
    parser.add_argument("--preset", default="cfaces64")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--test", type=int, default=1024, help="test-split images to measure accuracy on")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    config = configure.preset(args.preset)
    names = attribute_names(config.model.attributes)
    cache = open_cache(args.data)
    labels = torch.from_numpy(cache.attribute_columns(names))
    split = cache.labels["split"]
    train_index, test_index = np.flatnonzero(split == TRAIN), np.flatnonzero(split == TEST)[: args.test]
    rates = labels[train_index].mean(0).clamp(1e-6, 1 - 1e-6)
    base_entropy = float(-(rates * rates.log() + (1 - rates) * (1 - rates).log()).mean())
    t, size = config.train, config.model.resolution
    for variant in args.variants:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        _, discriminator = models.build(config.model, attribute_head=True)
        optimiser = torch.optim.Adam(discriminator.parameters(), t.d_lr, (t.beta1, t.beta2), t.adam_eps)
        losses, started = [], time.perf_counter()
        for _ in range(args.steps):
            batch = np.sort(rng.choice(train_index, t.batch_size, replace=False))
            shown = augment.augment(as_input(cache.images[batch], size), VARIANTS[variant])
            _, read = discriminator(shown, labels[batch], attributes=True)
            loss = F.binary_cross_entropy_with_logits(read, labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        correct = torch.zeros(len(names))
        with torch.no_grad():  # batch statistics, as in training: D is never in eval mode
            for i in range(0, len(test_index), t.batch_size):
                index = test_index[i : i + t.batch_size]
                _, read = discriminator(as_input(cache.images[index], size), labels[index], attributes=True)
                correct += ((read > 0).float() == labels[index]).float().sum(0)
        accuracy = correct / len(test_index)
        print(json.dumps({
            "variant": variant, "augment": ",".join(VARIANTS[variant]), "preset": args.preset, "steps": args.steps,
            "batch": t.batch_size, "lr": t.d_lr, "bce_last50": round(float(np.mean(losses[-50:])), 4),
            "bce_base_rates": round(base_entropy, 4),
            "test_accuracy": {n: round(float(a), 4) for n, a in zip(names, accuracy)},
            "test_majority": {n: round(float(max(r, 1 - r)), 4) for n, r in zip(names, labels[test_index].mean(0))},
            "seconds": round(time.perf_counter() - started, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
