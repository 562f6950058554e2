"""``facegan serve``: a web page that makes faces with one generator, over a small JSON API.

The generator is chosen when the server starts (a run, a checkpoint, a generator file
or a shipped model); no request names a file. Every request is bounded (faces per
request, seed range, known attributes), and generation runs in a worker thread, one
request at a time, so the event loop keeps answering.

    GET /                  the page (page.html beside this module)
    GET /api/model         what the page needs: size, attributes and their shares, bounds
    GET /api/faces         ?seed=S&n=N[&attr=Male=1,Smiling=0]: N faces as PNG data URLs
    GET /api/between       ?a=SEED_A&b=SEED_B&t=0..1[&attr=...]: the face a fraction t of
                           the way from face 0 of seed A to face 0 of seed B
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from facegan import images as imaging
from facegan import sample
from facegan.conditions import requests
from facegan.errors import FaceganError

PAGE = Path(__file__).with_name("page.html")
MAX_FACES = 64  # faces per request
MAX_SEED = 2**31 - 1


class BadRequest(Exception):
    pass


def _integer(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {text[:20]!r}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high:,}, not {value:,}")
    return value


class FaceMaker:
    """One generator and what it was trained on; makes faces one request at a time."""

    def __init__(self, path: Path, shown: str, device: torch.device):
        self.generator, self.config, self.conditions = sample.load_generator(path, device)
        self.shown, self.device = shown, device
        self.lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        c = self.conditions
        return {"model": self.shown, "resolution": self.config.model.resolution, "family": self.config.model.family,
                "attributes": [{"name": n, "share": round(c.share(n), 3)} for n in c.names] if c else [],
                "max_faces": MAX_FACES, "max_seed": MAX_SEED}

    def wanted(self, request: Request) -> dict[str, int]:
        text = request.query_params.get("attr", "")
        if not text.strip():
            return {}
        if self.conditions is None:
            raise BadRequest("this model is unconditional: it takes no attributes")
        try:
            wanted = requests(text, "attr")
            self.conditions.check(wanted)
        except FaceganError as e:
            raise BadRequest(str(e)) from None
        return wanted

    def faces(self, seed: int, n: int, wanted: dict[str, int]) -> list[str]:
        labels = self.conditions.sample(n, seed, wanted) if self.conditions else None
        with self.lock:
            made = sample.generate(self.generator, n, seed, self.device, labels=labels)
        return [data_url(image) for image in made]

    def between(self, a: int, b: int, t: float, wanted: dict[str, int]) -> str:
        z = sample.latents_between(self.generator.z_dim, a, b, [t])
        labels = self.conditions.sample(1, a, wanted) if self.conditions else None
        with self.lock:
            made = sample.generate(self.generator, 1, a, self.device, labels=labels, z=z)
        return data_url(made[0])


def data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(imaging.encode_png(image)).decode("ascii")


def create_app(path: Path, shown: str, device: torch.device) -> Starlette:
    """The ASGI application serving the generator in ``path`` (``shown``: its name on the page)."""
    maker = FaceMaker(path, shown, device)
    page = PAGE.read_text()

    def answer(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> JSONResponse:
            try:
                return JSONResponse(await handler(request))
            except BadRequest as e:
                return JSONResponse({"error": str(e)}, status_code=400)
        return endpoint

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def model(request: Request) -> dict[str, Any]:
        return maker.describe()

    async def faces(request: Request) -> dict[str, Any]:
        seed = _integer(request, "seed", 0, 0, MAX_SEED)
        n = _integer(request, "n", 8, 1, MAX_FACES)
        wanted = maker.wanted(request)
        return {"seed": seed, "faces": await run_in_threadpool(maker.faces, seed, n, wanted)}

    async def between(request: Request) -> dict[str, Any]:
        a = _integer(request, "a", 0, 0, MAX_SEED)
        b = _integer(request, "b", 1, 0, MAX_SEED)
        text = request.query_params.get("t", "0.5")
        try:
            t = float(text)
        except ValueError:
            raise BadRequest(f"t must be a number from 0 to 1, not {text[:20]!r}") from None
        if not 0.0 <= t <= 1.0:
            raise BadRequest(f"t must be from 0 to 1, not {t}")
        wanted = maker.wanted(request)
        return {"face": await run_in_threadpool(maker.between, a, b, t, wanted)}

    return Starlette(routes=[Route("/", index), Route("/api/model", answer(model)),
                             Route("/api/faces", answer(faces)), Route("/api/between", answer(between))])
