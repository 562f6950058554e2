"""What a person looks at first: ``losses.png`` (a chart of metrics.jsonl) and
``progress.gif`` (the epoch grids in order). Drawn with Pillow alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from facegan import files
from facegan import images as imaging
from facegan.figures import Figure
from facegan.metrics import registry

GIF_FRAMES = 60  # at most: a long run's animation samples its epochs evenly, so it costs the same to make


def write(run, last_grid: Path | None = None) -> None:
    """Refresh both pictures of a run directory from what it holds now; ``last_grid``
    (the grid where training stopped inside an epoch) ends the animation."""
    rows = run.read_metrics()
    if rows:
        plot(rows, run.losses_plot)
    frames = run.sample_paths()
    if last_grid is not None and last_grid not in frames:
        frames.append(last_grid)
    if frames:
        imaging.save_gif(evenly(frames, GIF_FRAMES), run.progress_gif)


def evenly(items: Sequence[Any], count: int) -> list[Any]:
    """At most ``count`` of ``items``, evenly spaced, the first and the last always among them."""
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    span = hi - lo or 1.0
    raw = span / count
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = int(lo // step) * step
    ticks, value = [], first
    while value <= hi + 1e-12:
        if value >= lo - 1e-12:
            ticks.append(round(value, 10))
        value += step
    return ticks


def _panel(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], rows: Sequence[dict[str, Any]],
           figures: Sequence[Figure], title: str, font, fixed: tuple[float, float] | None = None) -> None:
    left, top, right, bottom = box
    steps = [r["step"] for r in rows]
    keys = [f.name for f in figures]
    values = [r[k] for r in rows for k in keys if k in r]
    if not values:
        return
    lo, hi = fixed or (min(values), max(values))
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (step - x0) / (x1 - x0) * (right - left), bottom - (value - lo) / (hi - lo) * (bottom - top))

    draw.text((left, top - 22), title, fill=(30, 30, 30), font=font)
    for tick in nice_ticks(lo, hi):
        y = xy(x0, tick)[1]
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((left - 8, y), f"{tick:g}", fill=(90, 90, 90), font=font, anchor="rm")
    for tick in nice_ticks(x0, x1):
        x = xy(tick, lo)[0]
        draw.text((x, bottom + 6), f"{int(tick):,}", fill=(90, 90, 90), font=font, anchor="ma")
    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    legend_x = left + 20 + int(draw.textlength(title, font=font))  # beside the title: never under a curve
    for figure in figures:
        colour = figure.colour
        points = [xy(r["step"], r[figure.name]) for r in rows if figure.name in r]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        elif points:
            draw.ellipse([points[0][0] - 3, points[0][1] - 3, points[0][0] + 3, points[0][1] + 3], fill=colour)
        draw.line([(legend_x, top - 14), (legend_x + 20, top - 14)], fill=colour, width=3)
        draw.text((legend_x + 26, top - 14), figure.label, fill=(30, 30, 30), font=font, anchor="lm")
        legend_x += 40 + int(draw.textlength(figure.label, font=font))


PALETTE = ((52, 101, 164), (214, 69, 65), (78, 154, 6), (204, 121, 0), (117, 80, 123), (193, 125, 17))


def panels(rows: Sequence[dict[str, Any]]) -> dict[str, list[Figure]]:
    """The registered figures the rows hold, by the panel each is drawn in, in the
    registry's order. Per-attribute figures come once per attribute the run audits, each
    attribute in its own colour: its share in the samples solid, in real images paler."""
    found: dict[str, dict[str, Figure]] = {}
    for row in rows:
        for figure, _ in registry.in_row(row):
            if figure.panel is not None:
                found.setdefault(figure.panel, {}).setdefault(figure.name, figure)
    attributes = sorted({name.split("rate_", 1)[1] for figures in found.values() for name in figures
                         if name.startswith(("rate_", "real_rate_"))})
    result = {}
    for panel, figures in found.items():
        result[panel] = []
        for figure in figures.values():
            if figure.name.startswith(("rate_", "real_rate_")):
                colour = PALETTE[attributes.index(figure.name.split("rate_", 1)[1]) % len(PALETTE)]
                if figure.name.startswith("real_"):
                    colour = tuple((c + 2 * 255) // 3 for c in colour)
                figure = replace(figure, colour=colour)
            result[panel].append(figure)
    return result


def plot(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """One panel against the training step for each panel of the registered figures the
    rows hold: the losses, D's mean outputs, and, where the run logged them, a growing
    model's level, FID and the audited attributes' shares."""
    found = panels(rows)
    heights = [200 if panel not in (registry.LOSSES, registry.OUTPUTS) else 240 for panel in found]
    width, height = 960, 20 + sum(h + 80 for h in heights)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    top = 40
    for (panel, figures), h in zip(found.items(), heights):
        fixed = next((f.limits for f in figures if f.limits is not None), None)
        _panel(draw, (70, top, width - 30, top + h), rows, figures, panel, font, fixed)
        top += h + 80
    draw.text((width // 2, height - 6), "training step", fill=(30, 30, 30), font=font, anchor="ms")
    files.atomic_write(path, lambda f: image.save(f, format="PNG"))
