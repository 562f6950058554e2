"""Upscalers against interpolation, on photos they never trained on.

    python benchmarks/upscale_quality.py --test CACHE128_TEST [--checkpoint FILE ...] [--n 2550] [--fid-n 0]

The test photos (a cache of the test split at the output's size, e.g. ``facegan prepare
CELEBA --split test --size 128``) are shrunk by each upscaler's factor the way
training shrinks them (``facegan.upscaling.shrink``: Lanczos), then enlarged back by
bicubic and Lanczos interpolation and by each checkpoint's upscaler. One JSON line per
method: PSNR and SSIM on luminance (``facegan.metrics.pixels``) over the first ``--n``
photos; with ``--fid-n N``, FID and KID of N upscaled photos against N *other* real test
photos at full size (and the same for N real photos: the floor). Then a grid of the
first 6 photos: low-res (nearest) | bicubic | Lanczos | each upscaler | real.
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

from facegan import images as imaging  # noqa: E402
from facegan import sample, upscaling  # noqa: E402
from facegan.data.cache import open_cache  # noqa: E402
from facegan.metrics import pixels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", required=True, help="a prepared cache of held-out photos at the output size")
    parser.add_argument("--checkpoint", nargs="*", default=[], help="upscaler checkpoints or files")
    parser.add_argument("--scale", type=int, default=2, help="for interpolation alone, without a checkpoint")
    parser.add_argument("--n", type=int, default=0, help="photos for PSNR and SSIM (default 0: all)")
    parser.add_argument("--fid-n", type=int, default=0, help="photos for FID and KID (default 0: none)")
    parser.add_argument("--grid", default="", help="write the comparison grid here (.png)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    real = open_cache(args.test).images
    n = args.n or len(real)
    print(json.dumps({"machine": describe(), "threads": args.threads, "test": args.test, "photos": len(real)}),
          flush=True)
    upscalers = [(path, *sample.load_generator(path, device, "upscaler")[:2]) for path in args.checkpoint]
    scales = {config.model.family_settings.scale for _, _, config in upscalers} or {args.scale}
    if len(scales) != 1:
        raise SystemExit("all checkpoints must share one scale")
    scale = scales.pop()
    need = max(n, 2 * args.fid_n)
    if need > len(real):
        raise SystemExit(f"{args.test} has {len(real)} photos: --n and 2 x --fid-n must not exceed that")
    real = np.asarray(real[:need])
    low = upscaling.shrink(real, scale)
    side = real.shape[1]
    methods: dict[str, np.ndarray] = {"bicubic": upscaling.resized(low, side, "bicubic"),
                                      "lanczos": upscaling.resized(low, side, "lanczos")}
    for path, upscaler, _ in upscalers:
        start = time.perf_counter()
        methods[Path(path).name] = upscaling.upscale(upscaler, low, device)
        print(json.dumps({"upscaled": path, "images_per_s": round(len(low) / (time.perf_counter() - start), 1)}),
              flush=True)
    inception = reference = None
    if args.fid_n:
        from facegan.metrics.evaluate import compare
        from facegan.metrics.inception import Inception

        inception = Inception(device=device)
        reference = inception.features(real[args.fid_n : 2 * args.fid_n])
        floor = compare(reference, inception.features(real[: args.fid_n]))
        print(json.dumps({"method": "real photos (floor)", "fid": round(floor["fid"], 2),
                          "kid": round(floor["kid_mean"], 5), "n": args.fid_n}), flush=True)
    for name, made in methods.items():
        row = {"method": name, "psnr_y": round(pixels.psnr(made[:n], real[:n]), 3),
               "ssim_y": round(pixels.ssim(made[:n], real[:n]), 4), "n": n, "scale": scale}
        if inception is not None:
            figures = compare(reference, inception.features(made[: args.fid_n]))
            row.update(fid=round(figures["fid"], 2), kid=round(figures["kid_mean"], 5), fid_n=args.fid_n)
        print(json.dumps(row), flush=True)
    if args.grid:
        shown = 6
        columns = [upscaling.resized(low[:shown], side, "nearest"), *(m[:shown] for m in methods.values()), real[:shown]]
        rows = np.stack(columns, axis=1).reshape(-1, side, side, 3)
        imaging.save_png(imaging.grid(rows, columns=len(columns)), args.grid)
        print(json.dumps({"grid": args.grid, "columns": ["low-res", *methods, "real"]}), flush=True)


if __name__ == "__main__":
    main()
