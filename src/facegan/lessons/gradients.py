"""Lesson 2: minimax against non-saturating loss. When D rejects G's samples
confidently, the minimax loss gives G almost no gradient; the non-saturating one does."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import torch

from facegan.lessons import Lesson, Outcome, draw
from facegan.lessons.points import Game, Setup, coverage, real_points
from facegan.train.steps import LOSSES

D_FIRST = 300  # steps D trains alone against the untrained G: a confident D, as early in training
STEPS = 2000  # steps each loss then trains both networks
WATCH = 200  # of them, the first ones watched one by one
ESCAPED = 0.2  # D(G(z)) above this: G has escaped the confident D


def slope_curves() -> dict[str, list[tuple[float, float]]]:
    """|d(G's loss)/d(logit)| against D(G(z)), for each of facegan's two sigmoid losses,
    by autograd through the loss functions themselves."""
    curves = {}
    for name in ("minimax", "nonsaturating"):
        points = []
        for p in torch.linspace(0.002, 0.998, 100):
            logit = torch.logit(p).reshape(1).requires_grad_(True)
            (grad,) = torch.autograd.grad(LOSSES[name].g(logit), logit)
            points.append((float(p), abs(float(grad))))
        curves[name] = points
    return curves


def confident_game(seed: int, scale: float) -> Game:
    """A game whose D has trained alone for a while: G has not moved."""
    game = Game(Setup(seed=seed))
    lr = game.g_optimizer.param_groups[0]["lr"]
    game.g_optimizer.param_groups[0]["lr"] = 0.0  # G stands still while D learns
    game.play(D_FIRST)
    game.g_optimizer.param_groups[0]["lr"] = lr
    return game


def run(out: Path, seed: int, fixes: tuple[str, ...], scale: float) -> Outcome:
    start = confident_game(seed, scale)
    d_fake = float(torch.sigmoid(start.discriminator(start.generator(start.fixed_z)).detach()).mean())
    games, gradient = {}, {}
    for loss in ("minimax", "nonsaturating"):
        game = copy.deepcopy(start)  # the same networks, optimisers and noise for both
        game.objective = replace(game.objective, loss=loss)
        game.setup = replace(game.setup, loss=loss)
        gradient[loss] = game.generator_gradient()
        games[loss] = game
    real = real_points(start.setup, 512, torch.Generator().manual_seed(seed + 3))
    before = draw.scene(start.surface(), real, start.fakes(512), size=300,
                        title=f"after D alone: D(G(z)) = {d_fake:.3f}")
    trained, modes, watched, escaped = [before], {}, {}, {}
    for loss, game in games.items():
        watch = max(20, int(WATCH * scale))
        watched[loss] = [(i + 1, game.play(1)["d_fake"]) for i in range(watch)]
        escaped[loss] = next((i for i, d in watched[loss] if d > ESCAPED), None)
        game.play(max(50, int(STEPS * scale)) - watch)
        c = coverage(game.fakes(), game.setup)
        modes[loss] = (c.modes, c.on_mode)
        trained.append(draw.scene(game.surface(), real, game.fakes(512), size=300,
                                  title=f"{loss}, {game.steps - start.steps:,} steps later: {c.modes} modes"))
    training = draw.save(draw.side_by_side(trained), out / "training.png")
    slopes = draw.save(draw.chart(slope_curves(), "how hard G's loss pushes, against D's verdict on G's samples",
                                  "D(G(z)): 0 = D sure it is fake, 1 = D fooled", limits=(0, 1)), out / "slopes.png")
    escape = draw.save(draw.chart(watched, "D(G(z)) in the first steps after D trained alone", "step",
                                  limits=(0, 1)), out / "escape.png")
    ratio = gradient["nonsaturating"] / max(gradient["minimax"], 1e-30)
    numbers = {"d_fake_start": round(d_fake, 4), "gradient_minimax": gradient["minimax"],
               "gradient_nonsaturating": gradient["nonsaturating"], "gradient_ratio": round(ratio, 1),
               "modes_minimax": modes["minimax"][0], "modes_nonsaturating": modes["nonsaturating"][0],
               "on_mode_minimax": round(modes["minimax"][1], 3),
               "on_mode_nonsaturating": round(modes["nonsaturating"][1], 3),
               "escaped_minimax": escaped["minimax"] or -1, "escaped_nonsaturating": escaped["nonsaturating"] or -1}

    def steps(loss: str) -> str:
        return f"after {escaped[loss]} steps" if escaped[loss] else f"not within {len(watched[loss])} steps"

    text = f"""The game as first written (minimax) has G minimise log(1 - D(G(z))). Early in training
D easily rejects G's samples, D(G(z)) is near 0, and there that loss is flat: slopes.png
shows its push on D's logit is D(G(z)) itself, near 0, where the non-saturating loss
-log D(G(z)) (the thesis's binary cross-entropy with "real" labels for fakes) pushes with
1 - D(G(z)), near 1. This is the vanishing gradient of the thesis.

Measured (seed {seed}): after D trained alone for {start.steps:,} steps, D(G(z)) = {d_fake:.4f}. From that same
state G's gradient (root mean square per weight) was {gradient['minimax']:.2e} with minimax and
{gradient['nonsaturating']:.2e} with the non-saturating loss: {ratio:,.0f} times larger. G escaped (D(G(z)) above
{ESCAPED}, escape.png) {steps('nonsaturating')} with the non-saturating loss and {steps('minimax')} with minimax.

After that both losses train on (training.png): minimax covered {modes['minimax'][0]} modes by the end
({modes['minimax'][1]:.0%} of points on a mode), the non-saturating loss {modes['nonsaturating'][0]} ({modes['nonsaturating'][1]:.0%}; a mode
counts with a quarter of its fair share of points within 3 standard deviations). Minimax
recovers at all because of Adam (facegan's optimiser, as the thesis's): it divides each
step by the gradient's running size, so a gradient a thousand times smaller still moves
the weights once it points the same way for a while. What the gradient decides is the
start: the stall, which recurs whenever D gets far ahead. How well G covers the modes
later is another question (lesson 3): docs/lesson.md has it over three seeds."""
    return Outcome({"slopes": slopes, "escape": escape, "training": training}, numbers, text)


LESSON = Lesson(2, "gradients", "Minimax against non-saturating loss: the vanishing gradient", run,
                code=("facegan/train/steps.py: LOSSES ('minimax', 'nonsaturating'), bce",))
