"""The figures of docs/how-gans-learn.md, made by facegan from trained runs.

    python scripts/doc_figures.py --progan RUN --style RUN [--projection FOLDER] [--out docs/figures]

- ``progan-growing.png``: the first row of each sample grid a progressive run wrote, in
  order (epoch grids and the grid where it stopped): the faces as the run grew;
- ``style-mixing.png``: ``facegan generate --mix 3,8 --mix-from 4 -n 6`` of a stylegan2 run;
- ``style-truncation.png``: the same six latents at truncation 1, 0.7, 0.4 and 0 (rows);
- ``projection.png``: ``steps.png`` of a ``facegan project`` folder (the photo, then the search).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from facegan import images as imaging
from facegan import sample
from facegan.train.run import RunDir

CPU = torch.device("cpu")


def first_rows(run: Path) -> np.ndarray:
    """The first row of every sample grid of ``run``, in the order they were written, stacked."""
    grids = sorted((run / "samples").glob("*.png"), key=lambda p: p.stat().st_mtime)
    rows = []
    for grid in grids:
        picture = np.asarray(Image.open(grid).convert("RGB"))
        side = (picture.shape[1] - 2) // 8 - 2  # an 8-column grid with 2-pixel gaps
        rows.append(picture[: side + 4])
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--progan", type=Path)
    parser.add_argument("--style", type=Path)
    parser.add_argument("--projection", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.progan:
        imaging.save_png(first_rows(args.progan), args.out / "progan-growing.png")
    if args.style:
        generator, _, _ = sample.load_generator(RunDir(args.style).latest_checkpoint(), CPU)
        imaging.save_png(imaging.grid(sample.mixing(generator, 6, 3, 8, 4, CPU), columns=6), args.out / "style-mixing.png")
        z = sample.latents(6, generator.z_dim, 3)
        rows = [sample.generate(generator, 6, 3, CPU, z=z, truncation=psi) for psi in (1.0, 0.7, 0.4, 0.0)]
        imaging.save_png(imaging.grid(np.concatenate(rows), columns=6), args.out / "style-truncation.png")
    if args.projection:
        shutil.copyfile(args.projection / "steps.png", args.out / "projection.png")
    print(f"wrote the figures into {args.out}")


if __name__ == "__main__":
    main()
