"""What a person looks at first: ``losses.png`` (a chart of metrics.jsonl) and
``progress.gif`` (the epoch grids in order). Drawn with Pillow alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from facegan import files
from facegan import images as imaging

COLOURS = {"loss_d": (214, 69, 65), "loss_g": (52, 101, 164), "d_real": (78, 154, 6), "d_fake": (204, 121, 0),
           "fid": (117, 80, 123), "rate_Male": (52, 101, 164), "real_rate_Male": (136, 138, 133)}
LABELS = {"loss_d": "D loss", "loss_g": "G loss", "d_real": "mean D(real)", "d_fake": "mean D(fake)",
          "fid": "FID (evaluations during training)", "rate_Male": "samples",
          "real_rate_Male": "real images (the same classifier)"}


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


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
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
           keys: Sequence[str], title: str, font, fixed: tuple[float, float] | None = None) -> None:
    left, top, right, bottom = box
    steps = [r["step"] for r in rows]
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
    for tick in _nice_ticks(lo, hi):
        y = xy(x0, tick)[1]
        draw.line([(left, y), (right, y)], fill=(225, 225, 225))
        draw.text((left - 8, y), f"{tick:g}", fill=(90, 90, 90), font=font, anchor="rm")
    for tick in _nice_ticks(x0, x1):
        x = xy(tick, lo)[0]
        draw.text((x, bottom + 6), f"{int(tick):,}", fill=(90, 90, 90), font=font, anchor="ma")
    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    legend_x = left + 10
    for key in keys:
        points = [xy(r["step"], r[key]) for r in rows if key in r]
        if len(points) > 1:
            draw.line(points, fill=COLOURS[key], width=2)
        elif points:
            draw.ellipse([points[0][0] - 3, points[0][1] - 3, points[0][0] + 3, points[0][1] + 3], fill=COLOURS[key])
        draw.line([(legend_x, top + 14), (legend_x + 20, top + 14)], fill=COLOURS[key], width=3)
        draw.text((legend_x + 26, top + 14), LABELS[key], fill=(30, 30, 30), font=font, anchor="lm")
        legend_x += 40 + int(draw.textlength(LABELS[key], font=font))


def plot(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Panels against the training step: the losses, D's mean outputs, and FID when the
    run was evaluated during training."""
    with_fid = any("fid" in r for r in rows)
    with_men = any("rate_Male" in r for r in rows)
    width, height = 960, 660 + 280 * with_fid + 280 * with_men
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    _panel(draw, (70, 40, width - 30, 280), rows, ["loss_d", "loss_g"], "losses", font)
    _panel(draw, (70, 360, width - 30, 600), rows, ["d_real", "d_fake"], "discriminator outputs (0 fake, 1 real)", font, (0.0, 1.0))
    if with_fid:
        _panel(draw, (70, 680, width - 30, 880), rows, ["fid"], "FID against training images (lower is better)", font)
    if with_men:
        top = 680 + 280 * with_fid
        _panel(draw, (70, top, width - 30, top + 200), rows, ["rate_Male", "real_rate_Male"],
               "share of men, read by the attribute classifier", font, (0.0, 1.0))
    draw.text((width // 2, height - 6), "training step", fill=(30, 30, 30), font=font, anchor="ms")
    files.atomic_write(path, lambda f: image.save(f, format="PNG"))
