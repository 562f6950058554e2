"""How sure the attribute classifier is of the faces it reads, real and generated.

    python benchmarks/attribute_certainty.py --classifier classifier.pt --real CACHE CHECKPOINT ...

An attribute rate (the share of samples read as Male) is a threshold on the
classifier's probability. On real photos it is sure of almost every face; on a
generator's smeared faces it may not be, and then the rate swings with small changes
of the faces. For the real images and each checkpoint's samples (N each, the same
latents for every checkpoint) it prints a JSON line per attribute: the rate, the mean
probability, and the shares read with certainty (p > 0.8), against it (p < 0.2), and
unsure (in between).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from facegan import sample
from facegan.data.cache import open_cache
from facegan.metrics.attributes import AttributeClassifier
from facegan.metrics.evaluate import subset

SURE = 0.8


def summary(probabilities: np.ndarray) -> dict[str, float]:
    p = probabilities
    return {"rate": round(float(np.mean(p > 0.5)), 4), "mean_p": round(float(p.mean()), 4),
            "sure_yes": round(float(np.mean(p > SURE)), 4), "sure_no": round(float(np.mean(p < 1 - SURE)), 4),
            "unsure": round(float(np.mean((p >= 1 - SURE) & (p <= SURE))), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="*")
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--real", required=True, help="a prepared cache")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--attributes", default="Male", help="comma-separated, of the classifier's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reader = AttributeClassifier(args.classifier)
    columns = [reader.names.index(name) for name in args.attributes.split(",")]
    images = open_cache(args.real).images
    sources = [("real", images[subset(len(images), min(args.n, len(images)), 0)])]  # evaluate's real sample
    for path in args.checkpoints:
        generator, _, conditions = sample.load_generator(path, torch.device("cpu"))
        labels = None if conditions is None else conditions.sample(args.n, args.seed)
        sources.append((path, sample.generate(generator, args.n, args.seed, torch.device("cpu"), labels=labels)))
    for source, pictures in sources:
        p = reader.probabilities(pictures)
        for j in columns:
            print(json.dumps({"bench": "attribute_certainty", "source": source, "n": len(pictures),
                              "attribute": reader.names[j], **summary(p[:, j])}), flush=True)


if __name__ == "__main__":
    main()
