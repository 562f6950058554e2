"""What a figure is: one number facegan logs, prints, plots or puts on a model card.

A ``Figure`` says how a number is named, printed and drawn, and for an evaluation's
figure how it is computed from the evidence an evaluation gathers. The registry that
holds every figure is
``facegan.metrics.registry``; families declare the figures their networks add to the
training log in their record (``facegan.models.family``). This module sits at the
bottom so that both can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

ATTRIBUTE = "{attribute}"  # in a figure's name and label: one figure per attribute audited


@dataclass(frozen=True)
class Figure:
    name: str  # its key in metrics.jsonl rows, evaluate's results and model cards
    label: str  # how it is printed
    fmt: str = "{:.3f}"  # how its value is printed
    panel: str | None = None  # the title of the losses.png panel it is drawn in; None: not drawn
    limits: tuple[float, float] | None = None  # the panel's fixed value range; None: fitted to the values
    progress: bool = False  # shown on the training progress line
    colour: tuple[int, int, int] = (90, 90, 90)  # its line in losses.png
    needs: str = "training"  # what computes it: "training" (the step, the family), or what an evaluation needs
    compute: Callable[[Any], float] | None = None  # an evaluation's figure, of its evidence (facegan.metrics)

    @property
    def per_attribute(self) -> bool:
        return ATTRIBUTE in self.name

    def named(self, attribute: str) -> "Figure":
        """This figure for one attribute."""
        from dataclasses import replace

        return replace(self, name=self.name.replace(ATTRIBUTE, attribute),
                       label=self.label.replace(ATTRIBUTE, attribute))

    def show(self, value: float) -> str:
        return self.fmt.format(value)
