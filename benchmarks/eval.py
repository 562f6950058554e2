"""Reference figures for FID, KID, precision and recall, and the cost of computing them.

    python benchmarks/eval.py --real CACHE64 [--n 1000] [--checkpoint FILE ...] [--collapsed 1 4 16 64]

Compares, at equal N, one part of a real cache (A) with: another part (B, a floor:
the figure of a perfect generator), B blurred (Gaussian, radius 1 and 2 px), the
built-in synthetic faces, the samples of each checkpoint given, and simulated mode
collapses: N images drawn from only k real faces (a third part of the cache), each
copy shifted by up to 2 px, scaled in brightness by 0.9-1.1 and given noise (sigma 3),
as a collapsed generator repeats one face with small changes. The collapses calibrate
``eval.collapse_alarm``. Prints one JSON line per comparison, with the images/s of
Inception feature extraction, then a table.
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


def collapsed(faces: np.ndarray, k: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` jittered copies of the first ``k`` of ``faces``."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, *faces.shape[1:]), dtype=np.uint8)
    for i, which in enumerate(rng.integers(0, k, n)):
        dy, dx = rng.integers(-2, 3, 2)
        image = np.roll(faces[which].astype(np.float32), (dy, dx), axis=(0, 1)) * rng.uniform(0.9, 1.1)
        out[i] = (image + rng.normal(0, 3, image.shape)).clip(0, 255).astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="a prepared cache")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--checkpoint", nargs="*", default=[])
    parser.add_argument("--collapsed", type=int, nargs="*", default=[], metavar="K",
                        help="also simulated collapses onto K distinct faces")
    parser.add_argument("--inception")
    args = parser.parse_args()
    cache = open_cache(args.real)
    n, size = args.n, cache.size
    order = np.random.default_rng(0).permutation(len(cache.images))
    if 3 * n > len(cache.images):
        sys.exit(f"--n {n}: the cache holds {len(cache.images):,} images, fewer than the 3 x N this compares")
    half_a = cache.images[np.sort(order[:n])]
    half_b = cache.images[np.sort(order[n : 2 * n])]
    part_c = cache.images[np.sort(order[2 * n : 3 * n])]
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
              "real B blurred (radius 2)": blurred(half_b, 2.0), "built-in synthetic faces": synthetic_faces(n, size, seed=0)}
    for k in args.collapsed:
        others[f"collapsed onto {k} real faces"] = collapsed(part_c, k, n)
    for path in args.checkpoint:
        generator, _, _ = sample.load_generator(path, torch.device("cpu"))
        others[f"samples of {path}"] = sample.generate(generator, n, 1, torch.device("cpu"))
    rows = []
    for label, images in others.items():
        figures = compare(reference, features(images, label))
        row = {"bench": "eval", "reference": f"{cache.folder} half A", "against": label, "n": n, "size": size,
               **{k: round(v, 5) for k, v in figures.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\nN={n} each, {size} px, reference: half A of {cache.folder}")
    print(f"{'against':<60}{'FID':>9}{'KID':>18}{'prec':>7}{'recall':>7}{'divers.':>8}")
    for r in rows:
        print(f"{r['against'][:59]:<60}{r['fid']:>9.2f}{r['kid_mean']:>10.4f}+-{r['kid_std']:.4f}"
              f"{r['precision']:>7.3f}{r['recall']:>7.3f}{r['diversity']:>8.3f}")


if __name__ == "__main__":
    sys.exit(main())
