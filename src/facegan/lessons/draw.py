"""Pictures of the lessons, drawn with Pillow alone: the 2-D game (D's surface as a heat
map, real and generated points), line charts, bars, and frames for an animation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from facegan import images as imaging

REAL = (20, 20, 20)  # real points: black
FAKE = (230, 120, 0)  # generated points: orange
SERIES = ((52, 101, 164), (214, 69, 65), (78, 154, 6), (204, 121, 0), (117, 80, 123), (0, 150, 160))


def font(size: int = 14) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def heat(values: torch.Tensor) -> np.ndarray:
    """Probabilities (H, W) in [0, 1] to colours: blue where D says fake (0), white at 0.5,
    green where D says real (1)."""
    v = values.clamp(0, 1).numpy()[..., None]
    fake, middle, real = np.array([70, 110, 200.0]), np.array([250, 250, 250.0]), np.array([60, 170, 90.0])
    out = np.where(v < 0.5, fake + (middle - fake) * (v / 0.5), middle + (real - middle) * ((v - 0.5) / 0.5))
    return out.round().astype(np.uint8)


def scene(surface: torch.Tensor | None, real: torch.Tensor, fake: torch.Tensor, size: int = 320,
          extent: float = 3.0, title: str = "") -> Image.Image:
    """The plane [-extent, extent]^2: D's surface (if given) under the real points (black)
    and G's points (orange), with a title above."""
    top = 24 if title else 0
    picture = Image.new("RGB", (size, size + top), "white")
    if surface is not None:
        picture.paste(Image.fromarray(heat(surface)).resize((size, size), Image.BILINEAR), (0, top))
    draw = ImageDraw.Draw(picture)

    def dots(points: torch.Tensor, colour: tuple[int, int, int], r: float) -> None:
        xy = ((points.clamp(-extent * 1.05, extent * 1.05) + extent) / (2 * extent) * size).numpy()
        for x, y in xy:
            y = size - y + top
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)

    dots(real, REAL, 1.2)
    dots(fake, FAKE, 1.6)
    draw.rectangle([0, top, size - 1, size + top - 1], outline=(150, 150, 150))
    if title:
        draw.text((size // 2, 4), title, fill=(30, 30, 30), font=font(14), anchor="ma")
    return picture


def side_by_side(pictures: Sequence[Image.Image], gap: int = 8, caption: str = "") -> Image.Image:
    bottom = 28 if caption else 0
    width = sum(p.width for p in pictures) + gap * (len(pictures) + 1)
    height = max(p.height for p in pictures) + 2 * gap + bottom
    out = Image.new("RGB", (width, height), "white")
    x = gap
    for p in pictures:
        out.paste(p, (x, gap))
        x += p.width + gap
    if caption:
        ImageDraw.Draw(out).text((gap, height - bottom + 4), caption, fill=(30, 30, 30), font=font(14))
    return out


def chart(series: dict[str, Sequence[tuple[float, float]]], title: str, x_label: str, size=(640, 300),
          limits: tuple[float, float] | None = None, log_y: bool = False) -> Image.Image:
    """Lines of (x, y) points, one colour per series, a legend above."""
    from facegan.train.report import nice_ticks

    width, height = size
    left, top, right, bottom = 64, 48, width - 20, height - 40
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    f = font(13)
    transform = (lambda v: float(np.log10(max(v, 1e-12)))) if log_y else float
    ys = [transform(y) for points in series.values() for _, y in points]
    xs = [x for points in series.values() for x, _ in points]
    lo, hi = limits if limits is not None else (min(ys), max(ys))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = min(xs), max(max(xs), min(xs) + 1e-9)

    def at(x: float, y: float) -> tuple[float, float]:
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (transform(y) - lo) / (hi - lo) * (bottom - top)

    draw.text((left, 8), title, fill=(30, 30, 30), font=font(14))
    for tick in nice_ticks(lo, hi):
        y = bottom - (tick - lo) / (hi - lo) * (bottom - top)
        draw.line([(left, y), (right, y)], fill=(228, 228, 228))
        draw.text((left - 6, y), f"1e{tick:g}" if log_y else f"{tick:g}", fill=(90, 90, 90), font=f, anchor="rm")
    for tick in nice_ticks(x0, x1):
        x = left + (tick - x0) / (x1 - x0) * (right - left)
        draw.text((x, bottom + 6), f"{tick:,g}", fill=(90, 90, 90), font=f, anchor="ma")
    draw.text(((left + right) // 2, height - 4), x_label, fill=(30, 30, 30), font=f, anchor="ms")
    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    legend_x = left
    for (name, points), colour in zip(series.items(), SERIES * 4):
        xy = [at(x, y) for x, y in points]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        draw.line([(legend_x, 34), (legend_x + 18, 34)], fill=colour, width=3)
        draw.text((legend_x + 22, 34), name, fill=(30, 30, 30), font=f, anchor="lm")
        legend_x += 34 + int(draw.textlength(name, font=f))
    return picture


def save(picture: Image.Image, path: Path) -> Path:
    imaging.save_png(np.asarray(picture.convert("RGB")), path)
    return path
