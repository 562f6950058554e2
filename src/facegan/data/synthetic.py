"""The built-in data set: procedurally drawn faces, deterministic from a seed.

Each face varies in skin tone, face shape, hair (colour, style, length), eyes (size,
spacing, iris colour), brows, nose, mouth (smile or not, lip colour), ears, clothing and
background, with a small shift, scale and tilt of the head. Face ``i`` of seed ``s``
depends only on (s, i), so any slice of the set can be drawn alone and in parallel.

Faces are drawn at four times the target size and reduced with a Lanczos filter, which
gives smooth edges at any resolution.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from facegan import files
from facegan.data.workers import follow_parent

SUPERSAMPLE = 4
CANVAS = 256  # faces are laid out on a 256-unit square, then scaled to the drawing size

SKIN_TONES = [
    (255, 224, 196), (241, 194, 167), (224, 172, 136), (198, 134, 96),
    (161, 102, 70), (125, 78, 52), (92, 58, 40), (250, 208, 170),
]
HAIR_COLOURS = [
    (20, 16, 14), (58, 38, 26), (96, 64, 40), (150, 110, 70), (222, 190, 120),
    (170, 80, 40), (120, 120, 124), (230, 230, 226),
]
IRIS_COLOURS = [(60, 40, 25), (90, 60, 30), (60, 100, 140), (70, 110, 70), (40, 30, 25)]
LIP_COLOURS = [(170, 80, 80), (190, 90, 100), (140, 70, 60), (200, 110, 110), (120, 60, 55)]


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + int(d))) for c, d in zip(colour, rng.integers(-amount, amount + 1, 3)))


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(min(255, int(c * factor)) for c in colour)


def draw_face(seed: int, index: int, size: int) -> np.ndarray:
    """One face as a ``size`` x ``size`` x 3 uint8 array."""
    rng = np.random.default_rng([seed, index])
    scale = size * SUPERSAMPLE / CANVAS
    canvas_px = size * SUPERSAMPLE
    image = Image.new("RGBA", (canvas_px, canvas_px))  # the person, drawn on a transparent layer
    draw = ImageDraw.Draw(image)

    # Head pose: shift, size and (applied at the end) a small tilt.
    cx = 128 + rng.normal(0, 6)
    cy = 124 + rng.normal(0, 5)
    head = rng.uniform(0.9, 1.08)
    face_w = 68 * head * rng.uniform(0.85, 1.1)
    face_h = 86 * head * rng.uniform(0.9, 1.08)

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * scale, y0 * scale, x1 * scale, y1 * scale]

    def ellipse(x: float, y: float, rx: float, ry: float, colour, **kw) -> None:
        draw.ellipse(box(x - rx, y - ry, x + rx, y + ry), fill=colour, **kw)

    skin = _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 10)
    hair = _jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 12)
    style = rng.choice(["short", "long", "bald", "bob"], p=[0.4, 0.3, 0.1, 0.2])

    # Long hair falls behind the shoulders.
    if style in ("long", "bob"):
        length = 1.55 if style == "long" else 1.1
        ellipse(cx, cy + face_h * 0.25, face_w * 1.3, face_h * length, hair)

    # Shoulders and neck.
    shirt = tuple(int(v) for v in rng.integers(20, 235, 3))
    ellipse(cx, cy + face_h + 70, face_w * 2.2, 80, shirt)
    neck_w = face_w * 0.45
    draw.rectangle(box(cx - neck_w, cy + face_h * 0.5, cx + neck_w, cy + face_h + 25), fill=_shade(skin, 0.88))

    # Ears, then the face over them.
    for side in (-1, 1):
        ellipse(cx + side * face_w * 0.97, cy + 4, 11 * head, 17 * head, _shade(skin, 0.93))
    ellipse(cx, cy, face_w, face_h, skin)
    # Soft shading on the lower face.
    ellipse(cx, cy + face_h * 0.55, face_w * 0.7, face_h * 0.35, _shade(skin, 0.97))

    # Hair on top of the head.
    if style != "bald":
        cap_h = face_h * rng.uniform(0.45, 0.7)
        draw.chord(
            box(cx - face_w * 1.06, cy - face_h * 1.08, cx + face_w * 1.06, cy - face_h * 1.08 + 2 * cap_h * 1.25),
            180, 360, fill=hair,
        )
        if rng.random() < 0.5:  # a fringe
            part = rng.uniform(-0.4, 0.4)
            draw.chord(
                box(cx - face_w * (0.95 - part), cy - face_h * 0.95, cx + face_w * (0.95 + part), cy - face_h * 0.2),
                180, 360, fill=hair,
            )

    # Eyes, brows.
    eye_y = cy - face_h * rng.uniform(0.05, 0.15)
    spacing = face_w * rng.uniform(0.38, 0.5)
    eye_rx, eye_ry = 10 * head * rng.uniform(0.85, 1.15), 6 * head * rng.uniform(0.8, 1.2)
    iris = _jitter(rng, IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], 10)
    brow = _shade(hair, 0.8) if style != "bald" else _shade(skin, 0.5)
    brow_lift = rng.uniform(10, 16)
    brow_tilt = rng.uniform(-3, 3)
    gaze = rng.uniform(-2, 2)
    for side in (-1, 1):
        ex = cx + side * spacing
        ellipse(ex, eye_y, eye_rx, eye_ry, (245, 245, 240))
        ellipse(ex + gaze, eye_y, eye_ry * 0.9, eye_ry * 0.9, iris)
        ellipse(ex + gaze, eye_y, eye_ry * 0.4, eye_ry * 0.4, (10, 10, 10))
        draw.line(
            box(ex - eye_rx * 1.1, eye_y - brow_lift + side * brow_tilt, ex + eye_rx * 1.1, eye_y - brow_lift - side * brow_tilt),
            fill=brow, width=max(1, int(4 * scale * head)),
        )

    # Nose: a shaded wedge.
    nose_y = cy + face_h * rng.uniform(0.15, 0.25)
    nose_w = 7 * head * rng.uniform(0.8, 1.3)
    draw.polygon(
        [(cx * scale, (eye_y + 6) * scale), ((cx - nose_w) * scale, nose_y * scale), ((cx + nose_w) * scale, nose_y * scale)],
        fill=_shade(skin, 0.85),
    )

    # Mouth: a smile (lower chord) or a closed line.
    mouth_y = cy + face_h * rng.uniform(0.45, 0.55)
    mouth_w = face_w * rng.uniform(0.3, 0.45)
    lips = _jitter(rng, LIP_COLOURS[rng.integers(len(LIP_COLOURS))], 12)
    if rng.random() < 0.5:
        draw.chord(box(cx - mouth_w, mouth_y - 10, cx + mouth_w, mouth_y + 10), 0, 180, fill=lips)
        draw.rectangle(box(cx - mouth_w * 0.7, mouth_y, cx + mouth_w * 0.7, mouth_y + 3), fill=(250, 250, 245))
    else:
        ellipse(cx, mouth_y, mouth_w * 0.9, 4, lips)

    # Tilt the person, then lay it over a vertical blend of two random colours.
    image = image.rotate(float(rng.normal(0, 5)), resample=Image.BILINEAR, center=(cx * scale, cy * scale))
    top = rng.integers(40, 230, 3)
    bottom = np.clip(top + rng.integers(-60, 61, 3), 0, 255)
    ramp = np.linspace(0, 1, canvas_px)[:, None, None]
    background = np.broadcast_to((top * (1 - ramp) + bottom * ramp).astype(np.uint8), (canvas_px, canvas_px, 3))
    picture = Image.fromarray(np.ascontiguousarray(background))
    picture.paste(image, mask=image)
    return np.asarray(picture.resize((size, size), Image.LANCZOS))


def _draw_range(seed: int, start: int, stop: int, size: int) -> np.ndarray:
    return np.stack([draw_face(seed, i, size) for i in range(start, stop)])


def synthetic_faces(count: int, size: int, seed: int = 0, workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """``count`` faces as a uint8 array of shape (count, size, size, 3), drawn in parallel;
    ``progress(done, count)`` as parts are done."""
    workers = workers or os.cpu_count() or 1
    if count < 256 or workers == 1:
        faces = _draw_range(seed, 0, count, size)
        if progress:
            progress(count, count)
        return faces
    bounds = np.linspace(0, count, workers * 8 + 1).astype(int)
    parts = []
    with ProcessPoolExecutor(workers, initializer=follow_parent, initargs=(os.getpid(),)) as pool:
        for part in pool.map(_draw_range, [seed] * (len(bounds) - 1), bounds[:-1], bounds[1:],
                             [size] * (len(bounds) - 1)):
            parts.append(part)
            if progress:
                progress(sum(len(p) for p in parts), count)
    return np.concatenate(parts)


def drawn_once(count: int, size: int, seed: int, folder: Path,
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The faces of ``synthetic_faces``, drawn once and kept in ``folder`` under a name
    keyed by (count, size, seed) and this module's source, so a change to the drawing
    draws them again; a kept file of the wrong shape is drawn again too."""
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    path = folder / f"faces-{count}-{size}px-seed{seed}-{source}.npy"
    try:
        kept = np.load(path)
        if kept.shape == (count, size, size, 3) and kept.dtype == np.uint8:
            if progress:
                progress(count, count)
            return kept
    except (OSError, ValueError):
        pass
    faces = synthetic_faces(count, size, seed, progress=progress)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.atomic_write(path, lambda f: np.save(f, faces))
    except OSError:
        pass  # a read-only cache folder: draw them again next time
    return faces
