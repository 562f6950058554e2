"""Train every preset for a few steps on the built-in faces and print a fingerprint of
what it learned: one JSON line per preset with the SHA-256 of every tensor of its last
checkpoint (both networks, both optimisers, the moving average; not the settings, whose
layout may change). Run it before and after a change that must not change training:
equal fingerprints mean bitwise equal weights.

    python benchmarks/preset_fingerprints.py --steps 20 > before.jsonl
    ... change the code ...
    python benchmarks/preset_fingerprints.py --steps 20 > after.jsonl && diff before.jsonl after.jsonl

Each preset trains through the `facegan train` command with its own settings, except
the data (built-in faces, two batches' worth, drawn once per size) and one CPU thread,
so that reductions sum in the same order every time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomllib

import torch

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ROOT / "src" / "facegan" / "presets"
sys.path.insert(0, str(ROOT / "src"))

from facegan import checkpoint  # noqa: E402
from facegan.conditions import CELEBA_ATTRIBUTES  # noqa: E402


def tensors(value, prefix: str = ""):
    """(name, tensor) of every tensor in a nested checkpoint value, in a fixed order."""
    if isinstance(value, torch.Tensor):
        yield prefix, value
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from tensors(value[key], f"{prefix}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from tensors(item, f"{prefix}/{i}")


def fingerprint(path: Path) -> str:
    payload = checkpoint.load(path)
    digest = hashlib.sha256()
    for part in ("generator", "discriminator", "g_optimizer", "d_optimizer", "generator_ema"):
        for name, tensor in tensors(payload.get(part), part):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def labelled_faces(root: Path, count: int) -> Path:
    """A CelebA-layout folder of ``count`` seeded noise images with seeded attribute
    labels, for the conditional presets (the built-in faces have no labels)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "img_align_celeba").mkdir(parents=True)
    rows = []
    for i in range(count):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(root / "img_align_celeba" / name)
        rows.append(name + " " + " ".join(rng.choice(["1", "-1"], len(CELEBA_ATTRIBUTES))))
    (root / "list_attr_celeba.txt").write_text(f"{count}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(rows) + "\n")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--presets", nargs="*", default=None, help="default: every preset")
    parser.add_argument("--flags", default="", help="more train flags for every preset, e.g. '--precision fp32'")
    args = parser.parse_args()
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__}),
          flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets or sorted(p.stem for p in PRESETS.glob("*.toml")):
            run = Path(folder) / preset
            started = time.perf_counter()
            command = [sys.executable, "-m", "facegan", "train", "--preset", preset, "--run", str(run),
                       "--max-steps", str(args.steps), "--threads", "1", "--checkpoint-minutes", "0",
                       "--log-every", str(args.steps), *args.flags.split()]
            # two batches of built-in faces: small, and the same for every preset of a size
            batch = tomllib.loads((PRESETS / f"{preset}.toml").read_text()).get("train", {}).get("batch_size", 16)
            if "attributes" in tomllib.loads((PRESETS / f"{preset}.toml").read_text()).get("model", {}):
                command += ["--data", str(labelled_faces(Path(folder) / f"{preset}-celeba", 2 * batch))]
            else:
                command += ["--synthetic-count", str(2 * batch)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                print(json.dumps({"preset": preset, "exit": done.returncode,
                                  "error": done.stderr.strip().splitlines()[-1:]}), flush=True)
                continue
            latest = checkpoint.latest(run / "checkpoints")
            print(json.dumps({"preset": preset, "steps": args.steps, **({"flags": args.flags} if args.flags else {}),
                              "sha256": fingerprint(latest),
                              "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
