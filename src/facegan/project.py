"""Finding a photo in a generator: the latent whose image looks most like it.

A GAN has no encoder: G maps latents to images, nothing maps back. Projection
(Abdal et al. 2019; StyleGAN2's projector, Karras et al. 2020) searches for the
latent instead: start from the best of many random latents, then follow the gradient
of a distance between G(z) and the photo with respect to z, with Adam. The distance
is a pixel term (mean squared error) plus the perceptual distance of
``facegan.metrics.perceptual``: pixels alone favour a blurred average face, features
alone ignore colour. After every step z is put back on the sphere of radius sqrt(dim),
where nearly all of N(0, I)'s mass lies: off it, G makes images it never learned to
make. The learning rate rises over the first 5% of the steps and falls to 0 over the
last 25% (as in StyleGAN2's projector).

How close the result is says what the generator can draw: a face it can make is
recovered closely; one it cannot (unusual pose, a hat, an age it rarely saw) comes
back as the nearest face it can make.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from facegan import images as imaging
from facegan.errors import FaceganError
from facegan.metrics.perceptual import PerceptualDistance

RAMP_UP, RAMP_DOWN = 0.05, 0.25  # shares of the steps


@dataclass
class Projection:
    latent: torch.Tensor  # (1, z_dim), on the sphere of radius sqrt(z_dim)
    image: np.ndarray  # uint8 (H, W, 3): G's image of it
    history: list[dict[str, float]]  # per step: pixel, perceptual and total distance
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (step, image) along the way
    start: dict[str, float] = field(default_factory=dict)  # distances of the best random start and a typical one


def learning_rate(step: int, steps: int, peak: float) -> float:
    t = step / max(steps, 1)
    down = min(1.0, (1.0 - t) / RAMP_DOWN)
    return peak * min(1.0, t / RAMP_UP) * (0.5 - 0.5 * math.cos(down * math.pi))


def on_sphere(z: torch.Tensor) -> torch.Tensor:
    return z * (math.sqrt(z.shape[1]) / z.norm(dim=1, keepdim=True).clamp_min(1e-8))


def project(generator: torch.nn.Module, photo: np.ndarray, steps: int = 300, starts: int = 64, seed: int = 0,
            learning_rate_peak: float = 0.1, pixel_weight: float = 1.0, snapshots: int = 8,
            distance: PerceptualDistance | None = None,
            progress: Callable[[int, int], None] | None = None) -> Projection:
    """Project ``photo`` (uint8 (H, W, 3), the generator's size) into ``generator``'s latent space."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    distance = (distance or PerceptualDistance(generator.output_range)).to(device)
    lo, hi = generator.output_range
    target = torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float().to(device) / 255 * (hi - lo) + lo
    target_features = distance.features(target)

    def measure(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """G's images of ``z`` and their pixel, perceptual and total distances to the photo."""
        image = generator(z)
        pixel = (image - target).square().mean(dim=(1, 2, 3)) / (hi - lo) ** 2 * 4  # as for images in [-1, 1]
        perceptual = PerceptualDistance.between(distance.features(image), target_features)
        return image, pixel, perceptual, pixel_weight * pixel + perceptual

    try:
        with torch.no_grad():
            candidates = on_sphere(torch.randn(starts, generator.z_dim, generator=torch.Generator().manual_seed(seed)))
            totals = torch.cat([measure(chunk.to(device))[3] for chunk in candidates.split(16)])
        best = int(totals.argmin())
        z = candidates[best : best + 1].clone().to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=learning_rate_peak, betas=(0.9, 0.999))
        keep = {round(i * steps / max(snapshots - 1, 1)) for i in range(snapshots)} if snapshots else set()
        history, pictures = [], []
        for step in range(steps + 1):
            image, pixel, perceptual, total = measure(z)
            history.append({"step": step, **{name: round(float(value.detach()), 6) for name, value in
                                             (("pixel", pixel), ("perceptual", perceptual), ("total", total))}})
            if step in keep:
                pictures.append((step, imaging.to_uint8(image, generator.output_range)[0]))
            if step == steps:  # z as measured last is the result
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, learning_rate_peak)
            (z.grad,) = torch.autograd.grad(total.sum(), z)  # for z alone: G's weights stay untouched
            optimizer.step()
            with torch.no_grad():
                z.copy_(on_sphere(z))
            if progress is not None:
                progress(step + 1, steps)
        start = {"best_random_total": round(float(totals[best]), 6),
                 "median_random_total": round(float(totals.median()), 6), "starts": starts}
        return Projection(z.detach().cpu(), imaging.to_uint8(image, generator.output_range)[0], history, pictures,
                          start)
    finally:
        generator.train(was_training)


def pixel_error(photo: np.ndarray, image: np.ndarray) -> dict[str, float]:
    """How far two uint8 images are apart pixel by pixel: the root mean square difference
    in levels of 255, and the peak signal-to-noise ratio it makes, in dB."""
    error = photo.astype(np.float64) - image.astype(np.float64)
    rmse = float(np.sqrt(np.mean(error**2)))
    return {"rmse": rmse, "psnr": float(20 * np.log10(255 / max(rmse, 1e-9)))}


def save(result: Projection, photo: np.ndarray, out: Path) -> list[str]:
    """Write a projection into the folder ``out``: photo.png, projection.png, steps.png
    (the photo, then the face at the snapshots along the way), latent.npy, progress.jsonl;
    returns the names written."""
    import json

    from facegan import files

    try:
        out.mkdir(parents=True, exist_ok=True)
        imaging.save_png(photo, out / "photo.png")
        imaging.save_png(result.image, out / "projection.png")
        imaging.save_png(imaging.grid(np.stack([photo] + [image for _, image in result.snapshots]),
                                      columns=1 + len(result.snapshots)), out / "steps.png")
        files.atomic_write(out / "latent.npy", lambda f: np.save(f, result.latent.numpy()))
        files.write_text(out / "progress.jsonl", "".join(json.dumps(r) + "\n" for r in result.history))
    except OSError as e:
        raise FaceganError(f"cannot write {out}: {files.describe(e, out.parent)}") from None
    return ["photo.png", "projection.png", "steps.png", "latent.npy", "progress.jsonl"]
