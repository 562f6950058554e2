"""``facegan serve``: a web page that makes faces with one generator, over a small JSON API.

The generator is chosen when the server starts (a run, a checkpoint, a generator file
or a shipped model); no request names a file. Every request is bounded (faces per
request, seed range, known attributes).

    GET /                  the page (page.html beside this module)
    GET /api/model         what the page needs: size, attributes and their shares, bounds
    GET /api/faces         ?seed=S&n=N[&attr=Male=1,Smiling=0]: N faces as PNG data URLs
    GET /api/between       ?a=SEED_A&b=SEED_B&t=0..1[&attr=...]: the face a fraction t of
                           the way from face 0 of seed A to face 0 of seed B
    GET /api/edit          ?seed=S&n=N&i=I&edit=Smiling=1[&attr=...]: face I of those
                           /api/faces gives for S and N, edited by a translator (one of
                           those /api/model lists under "edits")

Nothing piles up (``Scheduler``): one worker thread makes faces, a few at a time, always
for the waiting request with the fewest faces left, so a small request waits for one
chunk at most; a request whose client went away is dropped at the next chunk; beyond
``MAX_WAITING`` waiting requests (``MAX_PER_CLIENT`` of one client) the answer is 503 or
429 with Retry-After, small requests (one chunk) and large ones each counted apart, so
large ones never crowd out small ones. Only this server's own pages may call the API: the Host header
must name the address it listens on (no DNS rebinding), and a request another site's
page makes (``Sec-Fetch-Site``, ``Origin``) is refused. Every answer says
``X-Content-Type-Options: nosniff`` and the page carries a Content-Security-Policy that
allows only its own inline script and style (by hash) and same-origin requests. HEAD
answers without making anything.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from facegan import images as imaging
from facegan import editing, pretrained, sample
from facegan.conditions import requests
from facegan.errors import FaceganError

PAGE = Path(__file__).with_name("page.html")
MAX_FACES = 64  # faces per request
MAX_SEED = 2**31 - 1
CHUNK = 8  # faces made at a time: the longest a small request waits behind a big one
MAX_WAITING = 32  # requests waiting or being answered, in all
MAX_PER_CLIENT = 8  # of them from one client address
RETRY_AFTER_S = 2
POLL_S = 0.1  # how often a waiting request checks that its client is still there
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class BadRequest(Exception):
    pass


class Busy(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    """The request's client went away, or the server is stopping."""


def query_integer(request: Request, name: str, default: int, low: int, high: int) -> int:
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


@dataclass(eq=False)
class Job:
    """One request's faces, made ``CHUNK`` at a time by ``make(start, count)``."""

    total: int
    make: Callable[[int, int], list[str]]
    client: str
    done: list[str] = field(default_factory=list)
    cancelled: bool = False
    future: asyncio.Future | None = None

    @property
    def left(self) -> int:
        return self.total - len(self.done)

    @property
    def small(self) -> bool:
        """One chunk or less: what the page asks for as the slider moves."""
        return self.total <= CHUNK


class Scheduler:
    """A bounded set of waiting jobs and the one thread that works through them."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.jobs: list[Job] = []
        self.condition = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._work, name="facegan-faces", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> Job:
        with self.condition:
            if self.stopping:
                raise Busy(503, "the server is stopping")
            alike = [j for j in self.jobs if j.small == job.small]  # small requests have their own places
            if len(alike) >= MAX_WAITING:
                raise Busy(503, f"{MAX_WAITING} requests are waiting already; try again in a moment")
            if sum(j.client == job.client for j in alike) >= MAX_PER_CLIENT:
                raise Busy(429, f"{MAX_PER_CLIENT} requests of yours are waiting already; try again in a moment")
            job.future = self.loop.create_future()
            self.jobs.append(job)
            self.condition.notify()
        return job

    def cancel(self, job: Job) -> None:
        with self.condition:
            job.cancelled = True

    def stop(self) -> None:
        """Drop every job (their requests end with 503) and let the worker end."""
        with self.condition:
            self.stopping = True
            for job in self.jobs:
                job.cancelled = True
                self._settle(job, Cancelled())
            self.jobs.clear()
            self.condition.notify()

    def _settle(self, job: Job, outcome: Any) -> None:
        def put() -> None:
            if job.future is not None and not job.future.done():
                (job.future.set_exception if isinstance(outcome, BaseException) else job.future.set_result)(outcome)

        try:
            self.loop.call_soon_threadsafe(put)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _next(self) -> Job | None:
        with self.condition:
            while True:
                for job in [j for j in self.jobs if j.cancelled]:
                    self.jobs.remove(job)
                    self._settle(job, Cancelled())
                if self.stopping:
                    return None
                if self.jobs:
                    return min(self.jobs, key=lambda j: j.left)  # the fewest faces left first
                self.condition.wait()

    def _work(self) -> None:
        while (job := self._next()) is not None:
            try:
                made = job.make(len(job.done), min(CHUNK, job.left))
            except Exception as e:  # noqa: BLE001 - handed to the request, which answers 500 with it
                outcome: Any = e
            else:
                outcome = None
                job.done.extend(made)
            with self.condition:
                if outcome is not None or not job.left:
                    if job in self.jobs:
                        self.jobs.remove(job)
                    self._settle(job, outcome if outcome is not None else job.done)


class FaceMaker:
    """One generator and what it was trained on, the upscaler that makes its faces
    larger, if one fits, and the edits translators of its size make."""

    def __init__(self, path: Path, shown: str, device: torch.device, upscaler: Path | None = None,
                 translator: Path | None = None):
        self.generator, self.config, self.conditions = sample.load_generator(path, device)
        self.shown, self.device = shown, device
        self.edits = self._edits(translator)
        self.larger, self.upscaler_shown, self.larger_side = None, None, None
        given = upscaler is not None
        if not given and pretrained.UPSCALER in pretrained.names():  # the shipped one, where it fits
            upscaler = pretrained.path(pretrained.UPSCALER)
        if upscaler is not None:
            network, config, _ = sample.load_generator(upscaler, device, "upscaler")
            try:
                self.larger = sample.upscaling_by(network, config, self.config, device)
            except FaceganError:
                if given:
                    raise
                return  # the shipped upscaler takes another size: the page offers no larger faces
            self.upscaler_shown = pretrained.UPSCALER if not given else str(upscaler)
            self.larger_side = config.model.resolution

    def _edits(self, given: Path | None) -> dict[str, editing.Edit]:
        """Every edit a translator makes of this generator's faces, by its name (Smiling=1):
        the ``given`` translator's, else the shipped ones of the generator's size."""
        sources = [given] if given is not None else [pretrained.path(n) for n in editing.shipped_translators()]
        found: dict[str, editing.Edit] = {}
        for source in sources:
            translator, config, _ = sample.load_generator(source, self.device, "translator")
            side = config.model.resolution
            if side != self.config.model.resolution:
                if given is not None:
                    raise FaceganError(f"{source} edits {side} px faces and the generator makes "
                                       f"{self.config.model.resolution} px ones")
                continue
            domains = config.model.family_settings.domains
            for attribute, value in editing.offered(domains):
                edit = editing.Edit(attribute, value, translator, editing.direction(domains, attribute, value),
                                    Path(source), side)
                found.setdefault(str(edit), edit)
        return found

    def describe(self) -> dict[str, Any]:
        c = self.conditions
        return {"model": self.shown, "resolution": self.config.model.resolution, "family": self.config.model.family,
                "attributes": [{"name": n, "share": round(c.share(n), 3)} for n in c.names] if c else [],
                "max_faces": MAX_FACES, "max_seed": MAX_SEED,
                "upscaler": {"name": self.upscaler_shown, "resolution": self.larger_side} if self.larger else None,
                "edits": [{"edit": name, "by": e.source.stem} for name, e in self.edits.items()]}

    def edit(self, request: Request) -> editing.Edit:
        text = request.query_params.get("edit", "")
        if text not in self.edits:
            offered = ", ".join(self.edits) or "none (no translator fits this model)"
            raise BadRequest(f"edit must be one of {offered}, not {text[:40]!r}")
        return self.edits[text]

    def finish(self, request: Request) -> Callable[[np.ndarray], np.ndarray]:
        """What the faces go through before they are sent: the upscaler when ``larger=1``."""
        if not query_integer(request, "larger", 0, 0, 1):
            return lambda faces: faces
        if self.larger is None:
            raise BadRequest("no upscaler fits this model: it takes no larger=1")
        return self.larger

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

    def faces(self, seed: int, n: int, wanted: dict[str, int],
              finish: Callable[[np.ndarray], np.ndarray]) -> Callable[[int, int], list[str]]:
        """Faces ``start`` to ``start + count`` of the ``n`` of ``seed``: the same faces as
        ``sample.generate`` makes of them in one batch, through ``finish``."""
        z = sample.latents(n, self.generator.z_dim, seed)
        labels = self.conditions.sample(n, seed, wanted) if self.conditions else None

        def make(start: int, count: int) -> list[str]:
            part = None if labels is None else labels[start : start + count]
            made = sample.generate(self.generator, count, seed, self.device, labels=part, z=z[start : start + count])
            return [data_url(image) for image in finish(made)]

        return make

    def edited(self, seed: int, n: int, i: int, wanted: dict[str, int], edit: editing.Edit,
               finish: Callable[[np.ndarray], np.ndarray]) -> Callable[[int, int], list[str]]:
        """Face ``i`` of the ``n`` of ``seed``, made in the chunk ``faces`` makes it in (so
        its pixels are those shown), edited, through ``finish``."""
        first = i - i % CHUNK
        z = sample.latents(n, self.generator.z_dim, seed)[first : first + CHUNK]
        labels = self.conditions.sample(n, seed, wanted)[first : first + CHUNK] if self.conditions else None

        def make(start: int, count: int) -> list[str]:
            chunk = sample.generate(self.generator, len(z), seed, self.device, labels=labels, z=z)
            return [data_url(finish(editing.apply([edit], chunk[i - first : i - first + 1], self.device))[0])]

        return make

    def between(self, a: int, b: int, t: float, wanted: dict[str, int],
                finish: Callable[[np.ndarray], np.ndarray]) -> Callable[[int, int], list[str]]:
        z = sample.latents_between(self.generator.z_dim, a, b, [t])
        labels = self.conditions.sample(1, a, wanted) if self.conditions else None
        return lambda start, count: [data_url(finish(sample.generate(self.generator, 1, a, self.device,
                                                                     labels=labels, z=z))[0])]


def data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(imaging.encode_png(image)).decode("ascii")


def content_security_policy(page: str) -> str:
    """Only the page's own inline script and style (by their hashes), images as data URLs,
    requests to this server; no frames, no forms, no plugins."""
    def hashes(tag: str) -> str:
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", page, re.S)
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                        for body in found)

    return (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; img-src data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host headers this server answers: its address and, on loopback, the other
    loopback names, with and without the port; None (any) when it listens on every address."""
    if host in ("0.0.0.0", "::", ""):
        return None
    names = set(LOOPBACK) | {"[::1]"} if host in LOOPBACK else {host, f"[{host}]"}
    return {name for base in names for name in (base, f"{base}:{port}")}


def refused(request: Request, hosts: set[str] | None) -> Response | None:
    """The answer to a request this server does not take: one addressed to another name
    (DNS rebinding), or an API call from another site's page; None for the rest."""
    if hosts is not None and request.headers.get("host", "").lower() not in hosts:
        return JSONResponse({"error": "this server answers only requests addressed to it by its own address"},
                            status_code=400)
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if request.url.path.startswith("/api/") and (
            site not in (None, "same-origin", "none")
            or (origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}")):
        return JSONResponse({"error": "another site's page may not use this server"}, status_code=403)
    return None


def json_endpoint(handler: Callable[[Request], Any], hosts: set[str] | None) -> Callable[[Request], Any]:
    """An API route: refused requests answered, HEAD answered without calling ``handler``,
    its result as JSON, and its BadRequest, Busy and Cancelled as 400, 503/429 and 503."""
    async def answer(request: Request) -> Response:
        stop = refused(request, hosts)
        if stop is not None:
            return stop
        if request.method == "HEAD":  # what a GET would answer, without making it
            return Response(headers={"Content-Type": "application/json"})
        try:
            body = await handler(request)
        except BadRequest as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        except Busy as e:
            return JSONResponse({"error": str(e)}, status_code=e.status, headers={"Retry-After": str(RETRY_AFTER_S)})
        except Cancelled:
            return JSONResponse({"error": "the request was dropped"}, status_code=503,
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse(body)
    return answer


def page_endpoint(page: str, hosts: set[str] | None) -> Callable[[Request], Any]:
    """A page, with its Content-Security-Policy and no caching."""
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": content_security_policy(page)}

    async def index(request: Request) -> Response:
        stop = refused(request, hosts)
        if stop is not None:
            return stop
        return HTMLResponse(page if request.method != "HEAD" else "", headers=headers)
    return index


def create_app(path: Path, shown: str, device: torch.device, host: str = "127.0.0.1", port: int = 8000,
               upscaler: Path | None = None, translator: Path | None = None) -> "NoSniff":
    """The ASGI application serving the generator in ``path`` (``shown``: its name on the
    page), for a server listening on ``host``:``port``; its faces made larger on request
    by ``upscaler`` (None: the shipped one, if it fits the generator) and edited by
    ``translator`` (None: the shipped ones that fit)."""
    maker = FaceMaker(path, shown, device, upscaler, translator)
    page = PAGE.read_text()
    hosts = allowed_hosts(host, port)
    state: dict[str, Scheduler] = {}

    def endpoint(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        return json_endpoint(handler, hosts)

    async def made(request: Request, total: int, make: Callable[[int, int], list[str]]) -> list[str]:
        """Faces from the scheduler; dropped (Cancelled) when the client goes away."""
        scheduler = state["scheduler"]
        job = scheduler.submit(Job(total, make, request.client.host if request.client else "?"))
        try:
            while True:
                done, _ = await asyncio.wait({job.future}, timeout=POLL_S)
                if done:
                    return job.future.result()
                if await request.is_disconnected():
                    raise Cancelled()
        finally:
            if not job.future.done():
                scheduler.cancel(job)

    index = page_endpoint(page, hosts)

    async def model(request: Request) -> dict[str, Any]:
        return maker.describe()

    async def faces(request: Request) -> dict[str, Any]:
        seed = query_integer(request, "seed", 0, 0, MAX_SEED)
        n = query_integer(request, "n", 8, 1, MAX_FACES)
        wanted, finish = maker.wanted(request), maker.finish(request)
        return {"seed": seed, "faces": await made(request, n, maker.faces(seed, n, wanted, finish))}

    async def between(request: Request) -> dict[str, Any]:
        a = query_integer(request, "a", 0, 0, MAX_SEED)
        b = query_integer(request, "b", 1, 0, MAX_SEED)
        text = request.query_params.get("t", "0.5")
        try:
            t = float(text)
        except ValueError:
            raise BadRequest(f"t must be a number from 0 to 1, not {text[:20]!r}") from None
        if not 0.0 <= t <= 1.0:
            raise BadRequest(f"t must be from 0 to 1, not {t}")
        wanted, finish = maker.wanted(request), maker.finish(request)
        return {"face": (await made(request, 1, maker.between(a, b, t, wanted, finish)))[0]}

    async def edit(request: Request) -> dict[str, Any]:
        seed = query_integer(request, "seed", 0, 0, MAX_SEED)
        n = query_integer(request, "n", 8, 1, MAX_FACES)
        i = query_integer(request, "i", 0, 0, n - 1)
        wanted, chosen, finish = maker.wanted(request), maker.edit(request), maker.finish(request)
        return {"face": (await made(request, 1, maker.edited(seed, n, i, wanted, chosen, finish)))[0]}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        state["scheduler"] = Scheduler(asyncio.get_running_loop())
        try:
            yield
        finally:
            state["scheduler"].stop()

    app = Starlette(routes=[Route("/", index), Route("/api/model", endpoint(model)),
                            Route("/api/faces", endpoint(faces)), Route("/api/between", endpoint(between)),
                            Route("/api/edit", endpoint(edit))],
                    lifespan=lifespan)
    app.state.scheduler = state  # the scheduler, once the server has started
    return NoSniff(app)


class NoSniff:
    """ASGI: every response says X-Content-Type-Options: nosniff."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def sending(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, sending if scope["type"] == "http" else send)


HEADER_TIMEOUT_S = 10  # a connection that has not sent a whole request head by then is closed
GRACEFUL_SHUTDOWN_S = 2  # Ctrl-C: requests still running after this are cancelled
MAX_CONNECTIONS = 256  # open connections and running requests; beyond them uvicorn answers 503


def listen(host: str, port: int):
    """A socket bound to ``host``:``port``, or one line (``FaceganError``) saying why not:
    a port in use, an address that is not this machine's. Bound before anything else, so
    nothing claims to serve before it can."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as e:
        raise FaceganError(f"cannot listen on {host}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        why = {errno.EADDRINUSE: f"port {port} is in use (another server?); give --port another one",
               errno.EADDRNOTAVAIL: f"{host} is not an address of this machine",
               errno.EACCES: f"port {port} needs more privileges; give --port 1024 or above"}.get(e.errno, e.strerror)
        raise FaceganError(f"cannot listen on {host}:{port}: {why}") from None
    return sock


def serve(app: "NoSniff", sock) -> None:
    """Run ``app`` on the bound socket ``sock`` until Ctrl-C or SIGTERM."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedHeaders(H11Protocol):
        """Closes a connection whose request head has not arrived ``HEADER_TIMEOUT_S`` after it
        opened or after its last answer (half-open connections hold nothing for long)."""

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self):
            super().on_response_complete()
            self._arm()

        def _arm(self):
            waiting_for = self.cycle
            self.loop.call_later(HEADER_TIMEOUT_S, lambda: self.cycle is waiting_for
                                 and not self.transport.is_closing() and self.transport.close())

    config = uvicorn.Config(app, log_level="warning", http=TimedHeaders, limit_concurrency=MAX_CONNECTIONS,
                            timeout_keep_alive=5, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
