"""Reference figures for FID, KID, precision and recall, and the cost of computing them.

    python benchmarks/eval.py --real CACHE64 [--n 1000] [--checkpoint FILE ...]

Compares, at equal N, one half of a real cache (A) with: the other half (B, a floor:
the figure of a perfect generator), B blurred (Gaussian, radius 1 px), the built-in
synthetic faces, and the samples of each checkpoint given. Prints one JSON line per
comparison, with the images/s of Inception feature extraction, then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageFilter

from facegan import sample
from facegan.data.cache import open_cache
from facegan.data.synthetic import synthetic_faces
from facegan.metrics.evaluate import compare
from facegan.metrics.inception import Inception


def blurred(images: np.ndarray, radius: float) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(im).filter(ImageFilter.GaussianBlur(radius))) for im in images])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="a prepared cache")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--checkpoint", nargs="*", default=[])
    parser.add_argument("--inception")
    args = parser.parse_args()
    cache = open_cache(args.real)
    n, size = args.n, cache.size
    order = np.random.default_rng(0).permutation(len(cache.images))
    half_a = cache.images[np.sort(order[:n])]
    half_b = cache.images[np.sort(order[n : 2 * n])]
    inception = Inception(args.inception)

    def features(images: np.ndarray, label: str) -> np.ndarray:
        started = time.perf_counter()
        out = inception.features(images)
        seconds = time.perf_counter() - started
        print(json.dumps({"bench": "inception_features", "set": label, "images": len(images), "size": size,
                          "seconds": round(seconds, 2), "images_per_s": round(len(images) / seconds, 2),
                          "torch_threads": torch.get_num_threads()}), flush=True)
        return out

    reference = features(half_a, "real A")
    others = {"real B (other half)": half_b, "real B blurred (radius 1)": blurred(half_b, 1.0),
              "built-in synthetic faces": synthetic_faces(n, size, seed=0)}
    for path in args.checkpoint:
        generator, _ = sample.load_generator(path, torch.device("cpu"))
        others[f"samples of {path}"] = sample.generate(generator, n, 1, torch.device("cpu"))
    rows = []
    for label, images in others.items():
        figures = compare(reference, features(images, label))
        row = {"bench": "eval", "reference": f"{cache.folder} half A", "against": label, "n": n, "size": size,
               **{k: round(v, 5) for k, v in figures.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nN={n} each, {size} px, reference: half A of {cache.folder}")
    print(f"{'against':<60}{'FID':>9}{'KID':>18}{'prec':>7}{'recall':>7}")
    for r in rows:
        print(f"{r['against'][:59]:<60}{r['fid']:>9.2f}{r['kid_mean']:>10.4f}+-{r['kid_std']:.4f}"
              f"{r['precision']:>7.3f}{r['recall']:>7.3f}")


if __name__ == "__main__":
    sys.exit(main())
