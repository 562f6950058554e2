"""Images/s of the cache loader against decoding every image every epoch, on the same images.

    python benchmarks/loader.py [--source ../shared/data/celeba] [--size 64] [--images 2000]

Prints one JSON line per variant, then one with the ratios:
- cache: facegan's BatchLoader over the prepared uint8 memory-mapped array (random
  batches, uint8 -> float in the model's range, flips), as training uses it;
- decode-1: what the thesis did every epoch: read each JPEG, decode, crop and resize with
  Pillow, stack into a batch (one process);
- decode-N: the same spread over all CPU cores (a multiprocessing pool).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from facegan.data.cache import open_cache
from facegan.data.decode import Crop, decode
from facegan.data.loader import BatchLoader
from facegan.data.prepare import prepare

ROOT = Path(__file__).resolve().parents[1]


def decode_one(args: tuple[str, int]) -> np.ndarray:
    path, size = args
    return decode(path, size, Crop("center"))[0]


def decode_epoch(paths: list[str], size: int, batch: int, workers: int) -> float:
    """Seconds for one epoch of decode-every-time batches."""
    order = np.random.default_rng(0).permutation(len(paths))
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    if pool:
        pool.map(decode_one, [(paths[0], size)] * workers)  # workers started before the clock starts
    started = time.perf_counter()
    try:
        for i in range(0, len(order) - batch + 1, batch):
            jobs = [(paths[j], size) for j in order[i : i + batch]]
            images = pool.map(decode_one, jobs) if pool else [decode_one(j) for j in jobs]
            batch_tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
            assert batch_tensor.shape[0] == batch
    finally:
        if pool:
            pool.close()
    return time.perf_counter() - started


def cache_epochs(images: np.ndarray, batch: int, epochs: int) -> float:
    loader = BatchLoader(images, batch, seed=0, device=torch.device("cpu"), pixel_range=(-1.0, 1.0), mirror=True)
    started = time.perf_counter()
    for epoch in range(epochs):
        for batch_tensor, _ in loader.epoch(epoch):
            assert batch_tensor.shape[0] == batch
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "celeba"))
    parser.add_argument("--cache", help="a prepared cache of --source at --size (default: prepare one in a temp folder)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--images", type=int, default=2000, help="images per epoch for the decode loaders")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    if not args.cache and not Path(args.source).exists():
        parser.exit(2, f"loader.py: no images at {args.source}: give --source a folder or CelebA root "
                       "(the shared CelebA subset sits at ../shared/data/celeba beside the repository)\n")

    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = Path(args.cache) if args.cache else Path(scratch) / "cache"
        if not args.cache:
            prepare(args.source, cache_dir, args.size)
        cache = open_cache(cache_dir)
        source_root = Path(cache.manifest["source"])
        folder = source_root / "img_align_celeba" if cache.manifest["source_kind"] == "celeba" else source_root
        n = min(args.images, len(cache.images))
        paths = [str(folder / f) for f in cache.manifest["files"][:n]]
        subset = cache.images[:n]  # the same images, memory-mapped as in training
        common = {"bench": "loader", "size": args.size, "batch": args.batch, "images": n, "cpus": os.cpu_count(),
                  "torch_threads": torch.get_num_threads()}
        results = {}
        epochs = max(1, 20_000 // n)
        seconds = cache_epochs(subset, args.batch, epochs)
        results["cache"] = epochs * (n // args.batch) * args.batch / seconds
        print(json.dumps({**common, "variant": "cache", "epochs": epochs, "seconds": round(seconds, 3),
                          "images_per_s": round(results["cache"], 1)}), flush=True)
        for workers in sorted({1, os.cpu_count() or 1}):
            seconds = decode_epoch(paths, args.size, args.batch, workers)
            results[f"decode-{workers}"] = (n // args.batch) * args.batch / seconds
            print(json.dumps({**common, "variant": f"decode-{workers}", "workers": workers, "seconds": round(seconds, 3),
                              "images_per_s": round(results[f"decode-{workers}"], 1)}), flush=True)
        ratios = {f"cache_over_{k}": round(results["cache"] / v, 1) for k, v in results.items() if k != "cache"}
        print(json.dumps({**common, "variant": "ratio", **ratios}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
