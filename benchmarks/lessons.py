"""What each lesson measures, over several seeds: the figures docs/lesson.md quotes. One
JSON line per (lesson, seed) with the lesson's numbers and its time, then one line per
lesson with each number's range over the seeds.

    python benchmarks/lessons.py [--seeds 0,1,2] [--lessons 1,2,3,4,5,6] [--threads 1]

A lesson teaches only if its failure and its fix differ on every seed, not on one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from facegan import lessons  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--lessons", default=",".join(str(lesson.number) for lesson in lessons.lessons()))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps({"machine": describe(), "threads": args.threads}), flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        for number in (int(n) for n in args.lessons.split(",")):
            lesson = lessons.find(number)
            seen: dict[str, list[float]] = {}
            for seed in seeds:
                outcome = lessons.run(lesson, Path(folder), seed)
                print(json.dumps({"lesson": number, "seed": seed, "seconds": round(outcome.seconds, 1),
                                  **outcome.numbers}), flush=True)
                for key, value in outcome.numbers.items():
                    seen.setdefault(key, []).append(value)
            print(json.dumps({"lesson": number, "seeds": seeds,
                              "range": {k: [min(v), max(v)] for k, v in seen.items()}}), flush=True)


if __name__ == "__main__":
    main()
