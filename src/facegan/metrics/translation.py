"""What a translator did to faces: whether the target attribute appeared, whether anything
else changed, how far the image moved, and whether it comes back.

For photos of one domain and their translations into the other (and those translated
back), read by an attribute classifier (``facegan.metrics.attributes``):

- ``target_before`` / ``target_after``: the share read as having the target attribute
  (for a pair of attributes, the one the target domain has, with the other absent);
- ``other_moved``: for every other attribute the classifier reads, the translated share
  minus the photos' share, in points (it should stay near 0);
- ``pixel_change``: the mean absolute change, in levels of 255, over the whole face and
  over its border (``outside_centre``: outside the central square of half the side,
  where hair and background are and a mouth is not);
- ``cycle_error``: the mean absolute difference, in levels, between a photo and its
  translation translated back; ``cycle_error_noisy``, the same when the translation is
  translated back after faint noise (``NOISE_LEVELS``, unseen by eye) was added to it:
  a translator that hides the photo in a signal too faint to see (Chu et al. 2017)
  loses it to the noise, one that keeps it in what it draws does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facegan.metrics.attributes import AttributeClassifier
from facegan.models import cycle


NOISE_LEVELS = 3.0  # the standard deviation, in levels of 255, of the noise ``cycle_error_noisy`` adds


def noisy(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """uint8 images with Gaussian noise of ``NOISE_LEVELS`` added (the same for a seed)."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE_LEVELS, images.shape)
    return (images.astype(np.float64) + noise).round().clip(0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Target:
    """What reaching the other domain means in a classifier's terms: these attributes
    read as 1, those as 0."""

    present: tuple[str, ...]
    absent: tuple[str, ...]

    @classmethod
    def of(cls, domains: str, to_b: bool) -> "Target":
        names = cycle.domain_attributes(domains)
        if len(names) == 1:
            return cls(names, ()) if to_b else cls((), names)
        return cls((names[1],), (names[0],)) if to_b else cls((names[0],), (names[1],))

    def share(self, read: np.ndarray, names: list[str]) -> float:
        """The share of faces whose decisions (N, len(names)) read as this target."""
        hit = np.ones(len(read), bool)
        for name in self.present:
            hit &= read[:, names.index(name)] == 1
        for name in self.absent:
            hit &= read[:, names.index(name)] == 0
        return float(hit.mean()) if len(read) else float("nan")


def border(side: int) -> np.ndarray:
    """A boolean (side, side) mask: True outside the central square of half the side."""
    outside = np.ones((side, side), bool)
    outside[side // 4 : side - side // 4, side // 4 : side - side // 4] = False
    return outside


def measure(photos: np.ndarray, translated: np.ndarray, back: np.ndarray, domains: str, to_b: bool,
            classifier: AttributeClassifier, back_from_noisy: np.ndarray | None = None) -> dict[str, object]:
    """The figures above for uint8 (N, S, S, 3) ``photos`` of the source domain, their
    ``translated`` faces, those translated ``back`` and, if given, the ``noisy``
    translations translated back."""
    names = classifier.names
    missing = [n for n in cycle.domain_attributes(domains) if n not in names]
    if missing:
        raise ValueError(f"{classifier.path} does not read {', '.join(missing)}")
    target = Target.of(domains, to_b)
    before, after = classifier.read(photos), classifier.read(translated)
    change = np.abs(translated.astype(np.float32) - photos.astype(np.float32)).mean(axis=3)  # (N, S, S)
    others = [n for n in names if n not in cycle.domain_attributes(domains)]
    figures: dict[str, object] = {
        "target_before": target.share(before, names),
        "target_after": target.share(after, names),
        "other_moved": {n: float(after[:, names.index(n)].mean() - before[:, names.index(n)].mean()) * 100
                        for n in others},
        "pixel_change": float(change.mean()),
        "outside_centre": float(change[:, border(photos.shape[1])].mean()),
        "cycle_error": float(np.abs(back.astype(np.float32) - photos.astype(np.float32)).mean()),
    }
    if back_from_noisy is not None:
        figures["cycle_error_noisy"] = float(np.abs(back_from_noisy.astype(np.float32) - photos.astype(np.float32)).mean())
    return figures
