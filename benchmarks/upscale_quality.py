"""Upscalers against interpolation, on photos they never trained on and on generated faces.

    python benchmarks/upscale_quality.py --test CACHE128_TEST [--checkpoint FILE ...] [--n 2550] [--fid-n 0]
        [--generated celeba64 --seeds 0,1] [--grid photos.png] [--generated-grid faces.png]

The test photos (a cache of the test split at the output's size, e.g. ``facegan prepare
CELEBA --split test --size 128``) are shrunk by each upscaler's factor the way
training shrinks them (``facegan.upscaling.shrink``: Lanczos), then enlarged back by
bicubic and Lanczos interpolation and by each checkpoint's upscaler. One JSON line per
method: PSNR and SSIM on luminance (``facegan.metrics.pixels``) over the first ``--n``
photos; with ``--fid-n N``, FID and KID of N upscaled photos against N *other* real test
photos at full size (and the same for N real photos: the floor). Then a grid of the
first 6 photos: low-res (nearest) | bicubic | Lanczos | each upscaler | real.

With ``--generated MODEL`` (a shipped generator, checkpoint or file whose faces are the
upscalers' input size), for each of ``--seeds``: ``--fid-n`` of its faces enlarged by
Lanczos and by each upscaler, FID and KID against the same real photos, and a grid of
the first 8: Lanczos | each upscaler.
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
    parser.add_argument("--generated", default="", help="also upscale this generator's faces (a shipped model, "
                                                        "checkpoint or file); needs --fid-n")
    parser.add_argument("--seeds", default="0,1", help="with --generated: the seeds of its faces (default 0,1)")
    parser.add_argument("--generated-only", action="store_true",
                        help="with --generated: measure only the generated faces (no photo rows)")
    parser.add_argument("--generated-grid", default="", help="with --generated: write its grid here (.png)")
    parser.add_argument("--reuse", default="", help="a folder keeping the real photos' Inception features between "
                                                    "runs (the same --test and --fid-n give the same features)")
    parser.add_argument("--no-interpolation", action="store_true",
                        help="only the checkpoints' rows (bicubic and Lanczos give the same figures every run)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.no_interpolation and not args.checkpoint:
        raise SystemExit("--no-interpolation needs --checkpoint: nothing else would be measured")
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
    real = np.array(real[:need])  # a writable copy of the read-only cache
    low = upscaling.shrink(real, scale)
    side = real.shape[1]
    methods: dict[str, np.ndarray] = {} if args.no_interpolation else {
        "bicubic": upscaling.resized(low, side, "bicubic"), "lanczos": upscaling.resized(low, side, "lanczos")}
    for path, upscaler, _ in upscalers:
        if args.generated_only:
            break
        start = time.perf_counter()
        methods[Path(path).name] = upscaling.upscale(upscaler, low, device)
        print(json.dumps({"upscaled": path, "images_per_s": round(len(low) / (time.perf_counter() - start), 1)}),
              flush=True)
    inception = reference = None
    if args.fid_n:
        from facegan.metrics.evaluate import compare
        from facegan.metrics.inception import Inception

        inception = Inception(device=device)
        reference = real_features(inception, real[args.fid_n : 2 * args.fid_n], args, "reference")
        floor = compare(reference, real_features(inception, real[: args.fid_n], args, "floor"))
        print(json.dumps({"method": "real photos (floor)", "fid": round(floor["fid"], 2),
                          "kid": round(floor["kid_mean"], 5), "n": args.fid_n}), flush=True)
    for name, made in methods.items():
        if args.generated_only:
            break
        row = {"method": name, "psnr_y": round(pixels.psnr(made[:n], real[:n]), 3),
               "ssim_y": round(pixels.ssim(made[:n], real[:n]), 4), "n": n, "scale": scale}
        if inception is not None:
            figures = compare(reference, inception.features(made[: args.fid_n]))
            row.update(fid=round(figures["fid"], 2), kid=round(figures["kid_mean"], 5), fid_n=args.fid_n)
        print(json.dumps(row), flush=True)
    if args.generated:
        generated(args, upscalers, side, inception, reference, device)
    if args.grid:
        shown = 6
        columns = [upscaling.resized(low[:shown], side, "nearest"), *(m[:shown] for m in methods.values()), real[:shown]]
        rows = np.stack(columns, axis=1).reshape(-1, side, side, 3)
        imaging.save_png(imaging.grid(rows, columns=len(columns)), args.grid)
        print(json.dumps({"grid": args.grid, "columns": ["low-res", *methods, "real"]}), flush=True)


def real_features(inception, photos: np.ndarray, args, part: str) -> np.ndarray:
    """Inception features of real photos, kept in --reuse (keyed by the cache, N and part) if given."""
    if not args.reuse:
        return inception.features(photos)
    kept = Path(args.reuse) / f"{Path(args.test).resolve().name}-{args.fid_n}-{part}.npy"
    if kept.is_file():
        return np.load(kept)
    kept.parent.mkdir(parents=True, exist_ok=True)
    found = inception.features(photos)
    np.save(kept, found)
    return found


def generated(args, upscalers, side, inception, reference, device) -> None:
    from facegan.metrics.evaluate import compare

    if inception is None:
        raise SystemExit("--generated needs --fid-n")
    path = sample.find_generator(checkpoint_path=args.generated) if Path(args.generated).is_file() else \
        sample.find_generator(model=args.generated)
    generator, _, _ = sample.load_generator(path, device)
    for seed in (int(s) for s in args.seeds.split(",")):
        faces = sample.generate(generator, args.fid_n, seed, device)
        methods = {} if args.no_interpolation else {"lanczos": upscaling.resized(faces, side, "lanczos")}
        methods.update({Path(p).name: upscaling.upscale(u, faces, device) for p, u, _ in upscalers})
        for name, made in methods.items():
            figures = compare(reference, inception.features(made))
            print(json.dumps({"generated": args.generated, "seed": seed, "method": name, "fid": round(figures["fid"], 2),
                              "kid": round(figures["kid_mean"], 5), "n": args.fid_n}), flush=True)
        if args.generated_grid and seed == int(args.seeds.split(",")[0]):
            columns = [m[:8] for m in methods.values()]
            rows = np.stack(columns, axis=1).reshape(-1, side, side, 3)
            imaging.save_png(imaging.grid(rows, columns=len(columns)), args.generated_grid)
            print(json.dumps({"generated_grid": args.generated_grid, "columns": list(methods)}), flush=True)


if __name__ == "__main__":
    main()
