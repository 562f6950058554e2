"""Lesson 5: convolution and transposed convolution, the layers of the thesis's DCGAN.
A stride-2 convolution halves a picture (D's direction); a 4x4 stride-2 transposed
convolution doubles it (G's), and can leave a checkerboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from facegan.data.synthetic import draw_face
from facegan.lessons import Lesson, Outcome, draw
from facegan.models.thesis import ThesisGenerator

SIDE = 8  # the feature map the lesson doubles


def picture(values: torch.Tensor, size: int = 160, title: str = "") -> Image.Image:
    """A (H, W) map, or an (3, H, W) image in [0, 1], enlarged without smoothing."""
    v = values.detach().float()
    if v.dim() == 2:
        lo, hi = float(v.min()), float(v.max())
        v = ((v - lo) / (hi - lo) if hi - lo > 1e-9 else v * 0 + 0.5).unsqueeze(0).expand(3, -1, -1)
    rgb = (v.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    shown = Image.fromarray(np.ascontiguousarray(rgb)).resize((size, size), Image.NEAREST)
    if not title:
        return shown
    return draw.side_by_side([shown], gap=0, caption=title)


def checkerboard(x: torch.Tensor) -> float:
    """How much of a map's variation is a period-2 pattern: the spread of its four 2x2
    phases' means over its whole spread, averaged over channels; 0 for none, 1 for all.
    ``x``: (C, H, W), its border cropped first (padding makes borders differ anyway)."""
    x = x[:, 2:-2, 2:-2].double()
    phases = torch.stack([x[:, i::2, j::2].mean(dim=(1, 2)) for i in (0, 1) for j in (0, 1)], dim=1)
    spread = x.flatten(1).std(dim=1)
    return float((phases.std(dim=1) / spread.clamp_min(1e-12)).clamp(max=1).mean())


def overlap(kernel: int) -> torch.Tensor:
    """How many kernel taps land on each output pixel of a stride-2 transposed convolution
    of all-ones weights over an all-ones map."""
    layer = nn.ConvTranspose2d(1, 1, kernel, stride=2, padding=1, bias=False)
    nn.init.ones_(layer.weight)
    with torch.no_grad():
        return layer(torch.ones(1, 1, SIDE, SIDE))[0, 0]


def run(out: Path, seed: int, fixes: tuple[str, ...], scale: float) -> Outcome:
    torch.manual_seed(seed)
    numbers: dict[str, float] = {}
    # D's direction: a stride-2 convolution with a vertical-edge kernel halves a face
    face = torch.from_numpy(draw_face(seed, 0, 64).copy()).permute(2, 0, 1).float() / 255
    edge = torch.tensor([[-1.0, -1, 1, 1]] * 4) / 8
    halved = F.conv2d(face.mean(0, keepdim=True)[None], edge[None, None], stride=2, padding=1)[0, 0]
    down = [picture(face, 192, "a face, 64 px"), picture(halved.abs(), 192, "4x4 stride-2 conv: 32 px")]

    # G's direction: how transposed convolutions overlap
    counts = {k: overlap(k) for k in (3, 4)}
    for k, c in counts.items():
        inner = c[2:-2, 2:-2]
        numbers[f"overlap_range_k{k}"] = float(inner.max() - inner.min())
    up = [picture(counts[3], 192, f"3x3 s2: taps {int(counts[3][2:-2, 2:-2].min())}-"
                                  f"{int(counts[3][2:-2, 2:-2].max())}"),
          picture(counts[4], 192, "4x4 s2 (thesis): 4 taps")]

    # ... but with learned (here: freshly initialised) weights, even 4x4 leaves a checkerboard
    flat = torch.ones(1, 32, SIDE, SIDE)
    transposed = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
    resize_conv = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(32, 32, 3, padding=1))
    with torch.no_grad():
        t_out, r_out = transposed(flat)[0], resize_conv(flat)[0]
    numbers["checkerboard_transposed"] = round(checkerboard(t_out), 3)
    numbers["checkerboard_resize_conv"] = round(checkerboard(r_out), 3)
    learned = [picture(t_out[0], 192, f"4x4 s2, random: {numbers['checkerboard_transposed']:.2f}"),
               picture(r_out[0], 192, f"resize + 3x3: {numbers['checkerboard_resize_conv']:.2f}")]

    # the thesis's generator before any training: its output is the pattern, stacked 3 times
    generator = ThesisGenerator(64, 128, 32)
    with torch.no_grad():
        made = generator(torch.randn(4, 128))
    numbers["checkerboard_thesis_untrained"] = round(sum(checkerboard(m) for m in made) / len(made), 3)
    faces = [picture(m.mean(0), 96) for m in made]  # grey, contrast stretched: the pattern is faint
    rows = [draw.side_by_side(down), draw.side_by_side(up), draw.side_by_side(learned),
            draw.side_by_side(faces, caption=f"untrained thesis G (stretched): "
                                             f"{numbers['checkerboard_thesis_untrained']:.2f}")]
    width = max(r.width for r in rows)
    sheet = Image.new("RGB", (width, sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    figure = draw.save(sheet, out / "layers.png")
    text = f"""The thesis's DCGAN is built of two layers. D's Conv 4x4 stride 2 slides a 4x4 kernel
over the picture two pixels at a time, so the answer is half as wide (row 1: an edge
detector on a face, 64 px in, 32 px out). G's ConvTranspose 4x4 stride 2 runs it
backwards: each input pixel stamps the kernel onto the output, two pixels apart, and
the stamps overlap (row 2: all-ones weights on an all-ones map). With a 3x3 kernel
the overlaps are uneven (taps range by {numbers['overlap_range_k3']:.0f} inside the map: a checkerboard); with the
thesis's 4x4, the stride divides the kernel and every pixel gets 4 taps.

Even, not enough: the four 2x2 phases of the output each use their own quarter of the
kernel's weights, so unless training makes the quarters agree, a flat input comes out
as a period-2 pattern (row 3). Share of the output's variation that is this pattern:
{numbers['checkerboard_transposed']:.2f} for a freshly initialised 4x4 stride-2 transposed convolution, {numbers['checkerboard_resize_conv']:.2f} for
nearest-neighbour upsampling followed by a 3x3 convolution (Odena et al. 2016's
"resize-convolution", as facegan's ProGAN and FastGAN families upsample). The
untrained thesis generator's faces are that pattern, stacked: {numbers['checkerboard_thesis_untrained']:.2f} (row 4).
Training has to unlearn it, and traces of it are a tell of transposed convolutions."""
    return Outcome({"layers": figure}, numbers, text)


LESSON = Lesson(5, "upsampling", "Convolution and transposed convolution: halving, doubling, the checkerboard", run,
                code=("facegan/models/thesis.py: ThesisGenerator, ThesisDiscriminator",
                      "facegan/models/dcgan.py: DCGANGenerator"))
