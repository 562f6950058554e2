"""Every figure facegan logs, prints, plots or evaluates, registered once.

A figure (``facegan.figures.Figure``) is named here with how it is printed and plotted;
an evaluation's figure also with what it needs and how it is computed. The training log
(``metrics.jsonl``), the progress line, ``losses.png``, ``facegan evaluate`` and
``facegan models`` all read this registry: a new figure is one ``register`` call, next
to the code that makes its number.

What an evaluation's figures need (``needs``):

- ``inception``: Inception features of the samples and of as many real images
  (``Evidence.real_features``, ``fake_features``);
- ``samples``: the samples themselves (``Evidence.fakes``, uint8 N x H x W x 3);

The attribute classifier's figures (shares per attribute, the Frechet distance in its
features, conditional accuracy) are tables, made by ``facegan.metrics.evaluate``; their
per-attribute rows are named ``rate_{attribute}`` and ``real_rate_{attribute}``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from facegan.figures import ATTRIBUTE, Figure
from facegan.metrics import distances

FIGURES: dict[str, Figure] = {}


def register(*figures: Figure) -> None:
    for figure in figures:
        if figure.name in FIGURES:
            raise ValueError(f"figure {figure.name} is registered twice")
        FIGURES[figure.name] = figure


def find(name: str) -> Figure | None:
    """The figure called ``name``; a per-attribute one by its pattern (``rate_Male``)."""
    if name in FIGURES:
        return FIGURES[name]
    for figure in FIGURES.values():
        if figure.per_attribute:
            before, after = figure.name.split(ATTRIBUTE)
            if name.startswith(before) and name.endswith(after) and len(name) > len(before) + len(after):
                return figure.named(name[len(before) : len(name) - len(after)])
    return None


def in_row(row: dict, progress_only: bool = False) -> list[tuple[Figure, float]]:
    """The registered figures a log row holds, in registration order."""
    found = [(find(name), value) for name, value in row.items() if isinstance(value, (int, float))]
    order = {name: i for i, name in enumerate(FIGURES)}
    found = [(f, v) for f, v in found if f is not None and (f.progress or not progress_only)]
    return sorted(found, key=lambda fv: order.get(fv[0].name, len(order)))


class Evidence:
    """What an evaluation compares: the samples and their Inception features, and the
    real images' features; figures that share work (KID's mean and spread) share it."""

    def __init__(self, real_features: np.ndarray, fake_features: np.ndarray, fakes: np.ndarray):
        self.real_features, self.fake_features, self.fakes = real_features, fake_features, fakes

    @cached_property
    def kid(self) -> tuple[float, float]:
        return distances.kid(self.real_features, self.fake_features)

    @cached_property
    def precision_recall(self) -> tuple[float, float]:
        return distances.precision_recall(self.real_features, self.fake_features)

    @cached_property
    def memorisation(self) -> tuple[float, float]:
        return distances.memorisation(self.real_features, self.fake_features)


def evaluate(evidence: Evidence, needs: tuple[str, ...] = ("inception", "samples")) -> dict[str, float]:
    """Every registered figure whose needs are among ``needs``, computed from ``evidence``."""
    return {f.name: float(f.compute(evidence)) for f in FIGURES.values() if f.compute is not None and f.needs in needs}


def _face_rate(e: Evidence) -> float:
    from facegan.metrics.faces import face_rate  # OpenCV: imported when a face rate is asked for

    return face_rate(e.fakes)


LOSSES, OUTPUTS = "losses", "discriminator outputs (0 fake, 1 real)"
register(  # the training step's figures (facegan.train.steps)
    Figure("loss_d", "D loss", panel=LOSSES, progress=True, colour=(214, 69, 65)),
    Figure("loss_g", "G loss", panel=LOSSES, progress=True, colour=(52, 101, 164)),
    Figure("d_real", "D(real)", "{:.2f}", panel=OUTPUTS, limits=(0.0, 1.0), progress=True, colour=(78, 154, 6)),
    Figure("d_fake", "D(fake)", "{:.2f}", panel=OUTPUTS, limits=(0.0, 1.0), progress=True, colour=(204, 121, 0)),
    Figure("r1", "R1 penalty", "{:.4f}"),
    Figure("attr_real", "attributes read, real", "{:.2f}", progress=True),
    Figure("attr_fake", "attributes read, fake", "{:.2f}", progress=True),
    Figure("attr_twin", "labels read by the twin, fake", "{:.2f}", progress=True),
    Figure("pl", "path-length penalty", "{:.4f}"),
    Figure("ms", "pair distance ratio", "{:.3f}", progress=True),
    Figure("images_per_s", "img/s", "{:.0f}", progress=True),
)
FID_PANEL = "FID against training images (lower is better)"
register(  # an evaluation's figures (facegan.metrics.evaluate), each of its evidence
    Figure("fid", "FID", "{:.2f}", panel=FID_PANEL, colour=(117, 80, 123), needs="inception",
           compute=lambda e: distances.fid(e.real_features, e.fake_features)),
    Figure("kid_mean", "KID", "{:.4f}", needs="inception", compute=lambda e: e.kid[0]),
    Figure("kid_std", "KID spread", "{:.4f}", needs="inception", compute=lambda e: e.kid[1]),
    Figure("precision", "precision", needs="inception", compute=lambda e: e.precision_recall[0]),
    Figure("recall", "recall", needs="inception", compute=lambda e: e.precision_recall[1]),
    Figure("diversity", "diversity", needs="inception",
           compute=lambda e: distances.diversity(e.real_features, e.fake_features)),
    Figure("near_copies", "near-copies", "{:.1%}", needs="inception", compute=lambda e: e.memorisation[0]),
    Figure("nearest_real_ratio", "nearest/real", needs="inception", compute=lambda e: e.memorisation[1]),
    Figure("face_rate", "face rate", "{:.1%}", needs="samples", compute=_face_rate),
)
ATTRIBUTE_PANEL = "share of each attribute, read by the attribute classifier"
register(  # the attribute classifier's (facegan.metrics.attributes), in evaluations during training
    Figure("classifier_fd", "classifier FD", "{:.2f}", needs="classifier"),
    Figure("classifier_fd_floor", "classifier FD, real vs real", "{:.2f}", needs="classifier"),
    Figure("fid_floor", "FID, real vs real", "{:.2f}", needs="card"),  # measured for model cards
    Figure(f"rate_{ATTRIBUTE}", f"{ATTRIBUTE}, samples", "{:.0%}", panel=ATTRIBUTE_PANEL, limits=(0.0, 1.0),
           needs="classifier"),
    Figure(f"real_rate_{ATTRIBUTE}", f"{ATTRIBUTE}, real images", "{:.0%}", panel=ATTRIBUTE_PANEL,
           limits=(0.0, 1.0), needs="classifier"),
)


def _family_figures() -> None:
    from facegan import models

    for family in models.FAMILIES.values():
        for figure in family.figures:
            if figure.name not in FIGURES:  # two families may log the same figure
                register(figure)


_family_figures()
