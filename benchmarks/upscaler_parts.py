"""What the adversarial stage of an upscaler spends its step on, per precision and layout.

    python benchmarks/upscaler_parts.py [--threads 1] [--batch 16] [--side 64]

Times forward + backward of the two networks the stage adds to the upscaler, on a batch
of ``--side`` px crops (sr128-gan's: 16 of 64 px): the patch critic and the frozen
EfficientNet-Lite0 of the perceptual loss, each in fp32 and bf16 autocast, contiguous
and channels_last, side by side in one run. One JSON line per variant (ms per batch and
the ratio to fp32 contiguous); ``train/upscaling.py`` runs the feature network in fp32 on
a CPU because of these figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from facegan.models import efficientnet  # noqa: E402
from facegan.models.srnet import PatchCritic  # noqa: E402


def timed(network: torch.nn.Module, channels_last: bool, bf16: bool, batch: int, side: int, repeats: int) -> float:
    layout = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(memory_format=layout)
    x = torch.randn(batch, 3, side, side).to(memory_format=layout).requires_grad_(True)
    for i in range(repeats + 2):
        if i == 2:
            start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = network(x) if isinstance(network, PatchCritic) else sum(f.float().mean() for f in network.features(x))
        out.float().mean().backward()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps({"machine": describe(), "threads": args.threads, "batch": args.batch, "side": args.side}))
    for name, network in (("critic", PatchCritic(32)), ("efficientnet_features", efficientnet.pretrained())):
        base = None
        for channels_last in (False, True):
            for bf16 in (False, True):
                ms = timed(network, channels_last, bf16, args.batch, args.side, args.repeats)
                base = base or ms
                print(json.dumps({"network": name, "layout": "channels_last" if channels_last else "contiguous",
                                  "precision": "bf16" if bf16 else "fp32", "ms_forward_backward": round(ms, 1),
                                  "vs_fp32_contiguous": round(ms / base, 2)}), flush=True)


if __name__ == "__main__":
    main()
