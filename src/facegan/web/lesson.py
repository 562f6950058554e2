"""``facegan serve --lesson``: lesson 1's game on 2-D points, trained by the server while
the learner watches in the browser (D's surface as a heat map, G's points, a switch per
fix, play, pause, step), as GAN Lab does, but with facegan's own code
(``facegan.lessons.points``).

    GET  /                    the page (lesson.html beside this module)
    GET  /api/lesson          the game now: step, D's surface, real and G's points, coverage, history
    POST /api/lesson/step     ?n=N (1..MAX_STEPS): N training steps, then the game as above
    POST /api/lesson/reset    ?setup=healthy|collapsing&loss=L&fix=r1,mbstd&seed=S: a new game

One game per server, stepped under a lock on a worker thread. The same guards as the
faces page: its own address only, no other site's pages, a policy allowing only its own
script and style, nosniff.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from facegan.lessons.collapse import COLLAPSING
from facegan.lessons.points import FIXES, Game, Setup, coverage, real_points
from facegan.train.steps import LOSSES
from facegan.web.app import BadRequest, NoSniff, allowed_hosts, json_endpoint, page_endpoint, query_integer

PAGE = Path(__file__).with_name("lesson.html")
SETUPS = {"healthy": Setup(), "collapsing": COLLAPSING}
MAX_STEPS = 100  # per request: an answer in well under a second
SURFACE = 48  # D's surface is sent as SURFACE x SURFACE probabilities
SHOWN = 256  # real and generated points sent
HISTORY = 300  # figures kept for the page's chart
EXTENT = 3.0


class LiveGame:
    """The one game this server plays, and what the page is shown of it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset("healthy", "nonsaturating", (), 0)

    def reset(self, setup: str, loss: str, fixes: tuple[str, ...], seed: int) -> None:
        chosen = replace(SETUPS[setup], loss=loss, seed=seed)
        for fix in fixes:
            chosen = chosen.fixed(fix)
        with self.lock:
            self.name = setup
            self.game = Game(chosen)
            self.real = real_points(chosen, SHOWN, torch.Generator().manual_seed(seed + 3))
            self.history: deque[dict[str, float]] = deque(maxlen=HISTORY)

    def step(self, n: int) -> None:
        with self.lock:
            for _ in range(n):
                figures = self.game.play(1)
                if self.game.steps % 5 == 0:
                    self.history.append({"step": self.game.steps, **{k: round(v, 4) for k, v in figures.items()}})

    def view(self) -> dict[str, Any]:
        with self.lock:
            game = self.game
            fakes = game.fakes()
            c = coverage(fakes, game.setup)
            return {"setup": self.name, "loss": game.setup.loss, "fixes": list(game.setup.fixes),
                    "seed": game.setup.seed, "step": game.steps, "extent": EXTENT,
                    "surface": [round(v, 3) for v in game.surface(SURFACE, EXTENT).flatten().tolist()],
                    "side": SURFACE, "real": [[round(a, 3), round(b, 3)] for a, b in self.real.tolist()],
                    "fake": [[round(a, 3), round(b, 3)] for a, b in fakes[:SHOWN].tolist()],
                    "modes": c.modes, "of": c.of, "on_mode": round(c.on_mode, 3), "history": list(self.history)}


def create_lesson_app(host: str = "127.0.0.1", port: int = 8000) -> NoSniff:
    live = LiveGame()
    hosts = allowed_hosts(host, port)

    async def view(request: Request) -> dict[str, Any]:
        return await asyncio.to_thread(live.view)

    async def step(request: Request) -> dict[str, Any]:
        n = query_integer(request, "n", 10, 1, MAX_STEPS)
        await asyncio.to_thread(live.step, n)
        return await asyncio.to_thread(live.view)

    async def reset(request: Request) -> dict[str, Any]:
        q = request.query_params
        setup, loss = q.get("setup", "healthy"), q.get("loss", "nonsaturating")
        if setup not in SETUPS:
            raise BadRequest(f"setup must be one of {', '.join(SETUPS)}, not {setup[:20]!r}")
        if loss not in LOSSES:
            raise BadRequest(f"loss must be one of {', '.join(LOSSES)}, not {loss[:20]!r}")
        fixes = tuple(f for f in q.get("fix", "").split(",") if f)
        unknown = [f for f in fixes if f not in FIXES]
        if unknown or len(set(fixes)) != len(fixes):
            raise BadRequest(f"fix must name each of {', '.join(FIXES)} at most once, not {q.get('fix', '')[:40]!r}")
        seed = query_integer(request, "seed", 0, 0, 2**31 - 1)
        await asyncio.to_thread(live.reset, setup, loss, fixes, seed)
        return await asyncio.to_thread(live.view)

    app = Starlette(routes=[Route("/", page_endpoint(PAGE.read_text(), hosts)),
                            Route("/api/lesson", json_endpoint(view, hosts)),
                            Route("/api/lesson/step", json_endpoint(step, hosts), methods=["POST"]),
                            Route("/api/lesson/reset", json_endpoint(reset, hosts), methods=["POST"])])
    return NoSniff(app)
