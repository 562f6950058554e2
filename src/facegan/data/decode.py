"""Decode one image file into a square uint8 RGB array: open safely, crop, resize.

Conversions (each counted in the manifest):
- grayscale (L, 1) and colour spaces other than RGB (CMYK, YCbCr, ...) become RGB;
- images with transparency (RGBA, LA, palette with transparency) are composited on white;
- 16-bit images are scaled to 8 bits (value / 257).
Reasons to skip instead: not an image, truncated or corrupt data, more pixels than
``max_pixels`` (a decompression bomb), a crop smaller than the target size (unless
upscaling is allowed), a crop box outside the image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 80_000_000  # about 9000 x 9000; more is treated as a decompression bomb


@dataclass(frozen=True)
class Crop:
    """"center" (largest centred square), "none" (the whole frame, squashed) or a box."""

    mode: str
    box: tuple[int, int, int, int] | None = None  # x, y, width, height

    @classmethod
    def parse(cls, text: str) -> "Crop":
        text = text.strip().lower()
        if text in ("center", "centre"):
            return cls("center")
        if text == "none":
            return cls("none")
        parts = text.split(",")
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise ValueError(f"crop must be center, none or x,y,w,h (integers), not {text!r}") from None
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError(f"crop box {text!r} needs x, y >= 0 and w, h > 0")
        return cls("box", (x, y, w, h))

    def __str__(self) -> str:
        return ",".join(map(str, self.box)) if self.box else self.mode

    def region(self, width: int, height: int) -> tuple[int, int, int, int] | None:
        """(left, top, right, bottom) of the crop in an image of this size, None if it does not fit."""
        if self.mode == "none":
            return (0, 0, width, height)
        if self.mode == "center":
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            return (left, top, left + side, top + side)
        x, y, w, h = self.box
        if x + w > width or y + h > height:
            return None
        return (x, y, x + w, y + h)


class Unusable(Exception):
    """This file cannot become a training image; the message says why."""


def _to_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    mode = image.mode
    if mode == "RGB":
        return image, None
    if mode.startswith("I;16") or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        scaled = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB"), "16-bit scaled to 8-bit"
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA(palette)"
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB"), "transparency composited on white"
    if mode in ("L", "1"):
        return image.convert("RGB"), "grayscale to RGB"
    return image.convert("RGB"), f"{mode} to RGB"


def decode(source: str | BinaryIO, size: int | None, crop: Crop, allow_upscale: bool = False,
           max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """The image as uint8 (size, size, 3) and the conversion applied (or None); with
    ``size`` None, the crop at its own size (H, W, 3).

    Raises ``Unusable`` with the reason when the file cannot be used.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(source)
        except UnidentifiedImageError:
            raise Unusable("not an image (format not recognised)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Unusable(f"decompression bomb (more than {max_pixels:,} pixels)") from None
        except OSError as e:
            if e.errno is not None:  # the file system's error, not the data's
                raise Unusable(f"cannot read ({e.strerror})") from None
            raise Unusable(f"truncated or corrupt ({e})") from None
        try:
            return _decode_open(image, size, crop, allow_upscale)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise Unusable(f"decompression bomb (more than {max_pixels:,} pixels)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise Unusable(f"truncated or corrupt ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
        finally:
            image.close()


def _decode_open(image: Image.Image, size: int | None, crop: Crop, allow_upscale: bool,
                 ) -> tuple[np.ndarray, str | None]:
    oriented = image.getexif().get(0x0112, 1) not in (1, None)
    if oriented:
        image = ImageOps.exif_transpose(image)
    width, height = image.size
    region = crop.region(width, height)
    if region is None:
        raise Unusable(f"crop box {crop} lies outside the {width}x{height} image")
    crop_w, crop_h = region[2] - region[0], region[3] - region[1]
    if size is None:
        image.load()
        rgb, note = _to_rgb(image)
        return np.asarray(rgb.crop(region), dtype=np.uint8), note
    if min(crop_w, crop_h) < size and not allow_upscale:
        raise Unusable(f"smaller than the target: {crop_w}x{crop_h} crop for {size}x{size}")
    if image.format == "JPEG" and not oriented:
        # Decode at a reduced scale (in the DCT domain) that still keeps the crop >= size.
        image.draft("RGB", (math.ceil(width * size / crop_w), math.ceil(height * size / crop_h)))
        sx, sy = image.size[0] / width, image.size[1] / height
        region = (round(region[0] * sx), round(region[1] * sy), round(region[2] * sx), round(region[3] * sy))
    image.load()
    rgb, note = _to_rgb(image)
    # crop first: resizing with box= would let the filter reach pixels outside the crop
    resized = rgb.crop(region).resize((size, size), Image.LANCZOS)
    return np.asarray(resized, dtype=np.uint8), note
