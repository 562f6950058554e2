"""Make a shipped upscaler: a run's network as a generator file, with its card's figures.

    python benchmarks/upscale_quality.py --test CACHE128_TEST --fid-n 1000 --checkpoint PSNR.pt GAN.pt \
        --generated celeba64 --seeds 0,1 > results.jsonl
    python scripts/ship_upscaler.py --checkpoint GAN.pt --results results.jsonl --hardware "2 cores of ..." \
        [--psnr-stage PSNR.pt] [--name sr128]

Stores the weights as fp16 unless that moves some pixel of 64 upscaled images by more
than one level (then fp32), and writes src/facegan/pretrained/NAME.safetensors with the
figures ``benchmarks/upscale_quality.py`` printed for it (and for bicubic, Lanczos and the
PSNR stage beside it) in its metadata, so ``facegan models`` shows them and the card's
numbers reproduce with that command.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from facegan import checkpoint, export, generator_file, sample
from facegan.data.cache import open_cache

FOLDER = Path(__file__).resolve().parents[1] / "src" / "facegan" / "pretrained"


def rows(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="the upscaler to ship (the adversarial stage's)")
    parser.add_argument("--results", required=True, help="benchmarks/upscale_quality.py's JSON lines")
    parser.add_argument("--psnr-stage", default="", help="the PSNR stage it started from, to show beside it")
    parser.add_argument("--hardware", required=True, help="what it trained on, in words")
    parser.add_argument("--name", default="sr128")
    args = parser.parse_args()

    state = checkpoint.TrainingState.load(args.checkpoint)
    upscaler, config, _ = sample.load_generator(args.checkpoint, torch.device("cpu"), "upscaler")
    moved = export.half_precision_error(upscaler, config, None)
    half = moved["max_levels"] <= 1
    found = rows(args.results)
    names = {"bicubic": "bicubic", "lanczos": "Lanczos", Path(args.checkpoint).name: args.name}
    if args.psnr_stage:
        names[Path(args.psnr_stage).name] = "PSNR stage"
    photos = {names[r["method"]]: {k: r[k] for k in ("psnr_y", "ssim_y", "fid", "kid")}
              for r in found if r.get("method") in names and "psnr_y" in r}
    floor = next(r for r in found if r.get("method") == "real photos (floor)")
    generated: dict[str, dict[str, float]] = {}
    for r in found:
        if "generated" in r and r["method"] in names:
            generated.setdefault(names[r["method"]], {})[f"seed {r['seed']}"] = r["fid"]
    psnr_elapsed = checkpoint.TrainingState.load(args.psnr_stage).elapsed if args.psnr_stage else 0.0
    card = {
        "data": "the shared CelebA subset's train split at 128 px, each photo and its Lanczos half-size copy",
        "images": int(open_cache(state.config["data"]["data"]).manifest["count"]),
        "steps": state.step,
        "training_hours": round((state.elapsed + psnr_elapsed) / 3600, 2),
        "hardware": args.hardware,
        "photos": photos,
        "fid_n": floor["n"],
        "fid_floor": floor["fid"],
        "generated": generated,
        "generated_from": next((r["generated"] for r in found if "generated" in r), None),
        "precision_check": moved,
    }
    out = FOLDER / f"{args.name}.safetensors"
    generator_file.save(upscaler.state_dict(), config, None, out, half=half, card=card)
    print(json.dumps({"wrote": str(out), "bytes": out.stat().st_size, "fp16": half, **card}, indent=1))


if __name__ == "__main__":
    main()
