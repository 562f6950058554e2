"""`facegan serve`: its JSON API in-process, and its page in a real headless Chromium
against a real server process."""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegan import generator_file, models, sample
from facegan.conditions import Conditions
from tests.conftest import tiny_config, widened

CPU = torch.device("cpu")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def pixels(data_url: str) -> np.ndarray:
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def conditional_file(tmp_path_factory) -> Path:
    """A small conditional FastGAN generator as a generator file: untrained, its weights
    drawn wide (``widened``) so that faces of different latents and labels differ."""
    config = tiny_config("cfast64", resolution=32, attributes="Male,Smiling")
    torch.manual_seed(0)
    generator = widened(models.build(config.model)[0])
    labels = np.random.default_rng(0).random((200, 2)) < [0.4, 0.5]
    path = tmp_path_factory.mktemp("serve") / "conditional.safetensors"
    generator_file.save(generator.state_dict(), config, Conditions.of(("Male", "Smiling"), labels), path)
    return path


@pytest.fixture(scope="module")
def upscaler_file(tmp_path_factory) -> Path:
    """An untrained 32 -> 64 px upscaler (bilinear enlargement plus a zero correction)."""
    from facegan import configure

    config = configure.override(configure.preset("sr128"), {"resolution": 64, "g_width": 8, "blocks": 1})
    path = tmp_path_factory.mktemp("serve") / "upscaler.safetensors"
    generator_file.save(models.build(config.model)[0].state_dict(), config, None, path)
    return path


@pytest.fixture(scope="module")
def translator_file(tmp_path_factory) -> Path:
    """An untrained 32 px translator between Smiling's domains, its weights drawn wide."""
    from facegan import configure

    config = configure.override(configure.preset("cycle64"), {"resolution": 32, "g_width": 8, "d_width": 8,
                                                               "blocks": 1, "d_layers": 2})
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serve") / "translator.safetensors"
    generator_file.save(widened(models.build(config.model)[0]).state_dict(), config, None, path)
    return path


@pytest.fixture(scope="module")
def client(conditional_file, upscaler_file, translator_file):
    from starlette.testclient import TestClient

    from facegan.web.app import create_app

    with TestClient(create_app(conditional_file, "test model", CPU, upscaler=upscaler_file,
                               translator=translator_file), base_url="http://127.0.0.1:8000") as c:
        yield c


def test_an_edit_is_the_translator_applied_to_the_same_face(client, translator_file):
    from facegan import editing

    info = client.get("/api/model").json()
    assert [e["edit"] for e in info["edits"]] == ["Smiling=1", "Smiling=0"]
    faces = client.get("/api/faces", params={"seed": 4, "n": 3, "attr": "Male=1"}).json()["faces"]
    translator, _, _ = sample.load_generator(translator_file, CPU, "translator")
    for value, to_b in (("1", True), ("0", False)):
        edited = client.get("/api/edit", params={"seed": 4, "n": 3, "i": 2, "attr": "Male=1",
                                                 "edit": f"Smiling={value}"}).json()["face"]
        expected = editing.translate(translator, pixels(faces[2])[None], to_b, CPU)[0]
        assert np.array_equal(pixels(edited), expected)
    larger = client.get("/api/edit", params={"seed": 4, "n": 3, "i": 0, "edit": "Smiling=1", "larger": 1}).json()
    assert pixels(larger["face"]).shape == (64, 64, 3)
    for query, message in (({"edit": "Eyeglasses=1"}, "edit must be one of Smiling=1, Smiling=0"),
                           ({"edit": "Smiling=1", "n": 3, "i": 3}, "i must be between 0 and 2")):
        answer = client.get("/api/edit", params=query)
        assert answer.status_code == 400 and message in answer.json()["error"]


def test_larger_faces_are_the_same_faces_upscaled(client, upscaler_file):
    from facegan import upscaling

    info = client.get("/api/model").json()
    assert info["upscaler"] == {"name": str(upscaler_file), "resolution": 64}
    small = client.get("/api/faces?seed=3&n=2").json()["faces"]
    large = client.get("/api/faces?seed=3&n=2&larger=1").json()["faces"]
    upscaler, _, _ = sample.load_generator(upscaler_file, CPU, "upscaler")
    for a, b in zip(small, large):
        assert np.array_equal(pixels(b), upscaling.upscale(upscaler, pixels(a)[None], CPU)[0])
    assert pixels(client.get("/api/between?a=1&b=2&t=0.5&larger=1").json()["face"]).shape == (64, 64, 3)
    answer = client.get("/api/faces?larger=2")
    assert answer.status_code == 400 and "larger" in answer.json()["error"]


def test_the_model_and_its_bounds_are_described(client):
    info = client.get("/api/model").json()
    assert info["resolution"] == 32 and info["model"] == "test model"
    assert [a["name"] for a in info["attributes"]] == ["Male", "Smiling"]
    assert 0 < info["attributes"][0]["share"] < 1 and info["max_faces"] == 64
    page = client.get("/")
    assert page.status_code == 200 and 'id="faces"' in page.text


def test_the_same_seed_gives_the_same_faces(client, conditional_file):
    first = client.get("/api/faces?seed=7&n=4").json()["faces"]
    again = client.get("/api/faces?seed=7&n=4").json()["faces"]
    other = client.get("/api/faces?seed=8&n=4").json()["faces"]
    assert first == again and first != other and len(first) == 4
    generator, _, conditions = sample.load_generator(conditional_file, CPU)
    expected = sample.generate(generator, 4, 7, CPU, labels=conditions.sample(4, 7))
    assert np.array_equal(np.stack([pixels(u) for u in first]), expected)


def test_an_attribute_request_is_honoured(client, conditional_file):
    """The faces made for Male=1 are the generator's faces for labels with Male=1."""
    generator, _, conditions = sample.load_generator(conditional_file, CPU)
    faces = client.get("/api/faces", params={"seed": 3, "n": 6, "attr": "Male=1"}).json()["faces"]
    labels = conditions.sample(6, 3, {"Male": 1})
    assert labels[:, 0].all()
    assert np.array_equal(np.stack([pixels(u) for u in faces]), sample.generate(generator, 6, 3, CPU, labels=labels))
    assert faces != client.get("/api/faces", params={"seed": 3, "n": 6, "attr": "Male=0"}).json()["faces"]


def test_between_two_faces_starts_and_ends_at_them(client):
    face_a = pixels(client.get("/api/faces?seed=11&n=1").json()["faces"][0]).astype(int)
    start = pixels(client.get("/api/between?a=11&b=12&t=0").json()["face"]).astype(int)
    middle = pixels(client.get("/api/between?a=11&b=12&t=0.5").json()["face"]).astype(int)
    assert np.abs(start - face_a).max() <= 1  # the same latent, up to float rounding in the interpolation
    assert np.abs(middle - face_a).max() > 1


@pytest.mark.parametrize("query, message", [
    ("/api/faces?n=0", "n must be between 1 and 64"),
    ("/api/faces?n=65", "n must be between 1 and 64"),
    ("/api/faces?n=many", "n must be a whole number"),
    ("/api/faces?seed=-1", "seed must be between 0 and 2,147,483,647"),
    ("/api/faces?seed=99999999999", "seed must be between 0 and 2,147,483,647"),
    ("/api/faces?attr=Male=2", "Male must be 0 or 1"),
    ("/api/faces?attr=Bald=1", "the model was not trained on Bald"),
    ("/api/faces?attr=Mail=1", "unknown attribute Mail (did you mean Male?)"),
    ("/api/between?t=1.5", "t must be from 0 to 1"),
    ("/api/between?t=nan", "t must be from 0 to 1"),
    ("/api/between?t=x", "t must be a number from 0 to 1"),
])
def test_bad_requests_are_refused_with_a_reason(client, query, message):
    response = client.get(query)
    assert response.status_code == 400 and message in response.json()["error"], response.text


def test_an_unconditional_model_refuses_attributes(tmp_path):
    from starlette.testclient import TestClient

    from facegan.web.app import create_app

    config = tiny_config("fast64", resolution=32)
    generator, _ = models.build(config.model)
    path = tmp_path / "plain.safetensors"
    generator_file.save(generator.state_dict(), config, None, path)
    with TestClient(create_app(path, "plain", CPU), base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/model").json()["upscaler"] is None  # the shipped upscaler takes 64 px faces, not 32
        answer = c.get("/api/faces?larger=1")
        assert answer.status_code == 400 and "no upscaler fits this model" in answer.json()["error"]
        assert c.get("/api/model").json()["attributes"] == []
        response = c.get("/api/faces?attr=Male=1")
        assert response.status_code == 400 and "unconditional" in response.json()["error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_process(*arguments: str):
    """`facegan serve ARGUMENTS` as a real process on a free port: its page's address."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "facegan", "serve", *arguments, "--port", str(port),
                                "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("facegan serve did not start listening within 60 s")
    url = Served(f"http://127.0.0.1:{port}/")
    url.process = process
    yield url
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture
def server(conditional_file, upscaler_file, translator_file):
    """`facegan serve` of the small test files, until the test ends."""
    yield from serve_process("--checkpoint", str(conditional_file), "--upscale", str(upscaler_file),
                             "--translator", str(translator_file))


@pytest.fixture
def shipped_server():
    """`facegan serve --model celeba64-attr`: the shipped conditional model, with the
    shipped upscaler and translator it is given by default."""
    yield from serve_process("--model", "celeba64-attr")


class Served(str):
    """The served page's address, with the server process beside it."""

    process: subprocess.Popen


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_the_page_in_a_real_browser(shipped_server, tmp_path):
    """The page of the shipped conditional model (celeba64-attr) in Chromium: new faces,
    its attribute controls, the seed box, the slider, the shipped upscaler and translator."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

    def sources(page) -> list[str]:
        return page.eval_on_selector_all("img.face", "imgs => imgs.map(i => i.src)")

    def rendered(page) -> None:  # every face decoded and drawn, not just a tag
        page.wait_for_function("() => { const imgs = [...document.querySelectorAll('img.face')];"
                               " return imgs.length === 16 && imgs.every(i => i.complete && i.naturalWidth === 64); }")

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(shipped_server)
        rendered(page)
        first = sources(page)
        controls = page.eval_on_selector_all("select[id^='attr-']", "s => s.map(e => e.id)")
        assert controls == [f"attr-{name}" for name in ("Male", "Young", "Smiling", "Eyeglasses", "Blond_Hair",
                                                       "Black_Hair", "Wearing_Hat", "Heavy_Makeup")]
        assert len(set(first)) == 16

        page.click("#new")  # a new seed: new faces
        page.wait_for_function("old => document.querySelector('img.face').src !== old", arg=first[0])
        rendered(page)
        assert sources(page) != first

        with page.expect_response(lambda r: "attr=Male%3D1" in r.url and r.ok):  # the control sends the request
            page.select_option("#attr-Male", "1")
        page.fill("#seed", "5")
        with page.expect_response(lambda r: "seed=5" in r.url and "attr=Male%3D1" in r.url and r.ok):
            page.dispatch_event("#seed", "change")
        page.wait_for_function("() => document.getElementById('faces').dataset.seed === '5'")
        rendered(page)
        male = sources(page)
        with page.expect_response(lambda r: "seed=5" in r.url and "attr=Male%3D0" in r.url and r.ok):
            page.select_option("#attr-Male", "0")
        page.wait_for_function("old => document.querySelector('img.face').src !== old", arg=male[0])
        assert sources(page) != male

        between = page.get_attribute("#between", "src")
        with page.expect_response(lambda r: "/api/between" in r.url and "t=0.9" in r.url):
            page.fill("#t", "90")
        page.wait_for_function("old => document.getElementById('between').src !== old", arg=between)
        assert page.get_attribute("#between-download", "href").startswith("data:image/png")
        # leaving the filled #seed box (focus moves on) fires its native change, one more
        # request for the same faces: the status says "making faces ..." until it is back
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('seed 5')")
        assert page.text_content("#status").startswith("seed 5")

        assert "larger: 128 px" in page.text_content("#larger-box")  # larger faces: the same faces, upscaled
        with page.expect_response(lambda r: "seed=5" in r.url and "larger=1" in r.url and r.ok):
            page.check("#larger")
        page.wait_for_function("() => { const imgs = [...document.querySelectorAll('img.face')];"
                               " return imgs.length === 16 && imgs.every(i => i.complete && i.naturalWidth === 128); }")
        edited = sources(page)[3]  # an edit under a face: the translator's face in its place, then back
        with page.expect_response(lambda r: "/api/edit" in r.url and "i=3" in r.url and "Smiling%3D1" in r.url
                                  and r.ok):
            page.select_option("select.edit >> nth=3", "Smiling=1")
        page.wait_for_function("old => document.querySelectorAll('img.face')[3].src !== old", arg=edited)
        page.select_option("select.edit >> nth=3", "")
        page.wait_for_function("old => document.querySelectorAll('img.face')[3].src === old", arg=edited)
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()


def test_only_its_own_address_and_its_own_pages_are_answered(client):
    assert client.get("/api/model", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert client.get("/api/model", headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/api/faces?n=1", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403  # <img src=...>
    assert client.get("/api/faces?n=1", headers={"Sec-Fetch-Site": "same-site"}).status_code == 403  # another port
    assert client.get("/api/faces?n=1", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/faces?n=1", headers={"Sec-Fetch-Site": "same-origin",
                                                 "Origin": "http://127.0.0.1:8000"}).status_code == 200


def test_every_answer_is_nosniff_and_the_page_allows_only_its_own_script(client):
    page = client.get("/")
    assert page.headers["x-content-type-options"] == "nosniff"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "frame-ancestors 'none'" in policy
    assert client.get("/api/model").headers["x-content-type-options"] == "nosniff"


def test_head_answers_without_making_faces(client):
    from facegan.web import app

    started = time.perf_counter()
    response = client.head(f"/api/faces?n={app.MAX_FACES}")
    assert response.status_code == 200 and response.content == b"" and time.perf_counter() - started < 1


def test_waiting_requests_are_bounded_small_ones_apart_and_the_fewest_faces_go_first():
    import asyncio
    import threading

    from facegan.web.app import CHUNK, MAX_PER_CLIENT, MAX_WAITING, Busy, Job, Scheduler

    async def scenario() -> tuple[list[int], list[str]]:
        gate, entered, order = threading.Event(), threading.Event(), []

        def make(total):
            def run(start, count):
                entered.set()
                gate.wait(10)
                order.append(total)
                return ["face"] * count
            return run

        scheduler = Scheduler(asyncio.get_running_loop())
        jobs = [scheduler.submit(Job(64, make(64), "10.0.0.0"))]
        await asyncio.to_thread(entered.wait, 10)  # the worker is inside the first big job's first chunk
        jobs += [scheduler.submit(Job(64, make(64), f"10.0.0.{i}")) for i in range(1, MAX_WAITING)]
        refusals = []
        for job, client in ((Job(64, make(64), "10.0.0.99"), "full"), (Job(1, make(1), "10.0.0.1"), "small")):
            try:
                jobs.append(scheduler.submit(job))
            except Busy as e:
                refusals.append(f"{client} {e.status}")
        for i in range(MAX_PER_CLIENT):
            scheduler.submit(Job(1, make(1), "10.0.0.7"))
        try:
            scheduler.submit(Job(1, make(1), "10.0.0.7"))
        except Busy as e:
            refusals.append(f"one client {e.status}")
        gate.set()
        await asyncio.wait_for(jobs[0].future, 10)
        scheduler.stop()
        return order, refusals


    order, refusals = asyncio.run(scenario())
    assert refusals == ["full 503", "one client 429"]
    # after the chunk in hand, every one-face job came next, then the big ones' chunks
    assert order[0] == 64 and order[1 : 2 + MAX_PER_CLIENT] == [1] * (1 + MAX_PER_CLIENT) and CHUNK < 64


@pytest.mark.slow
def test_abandoned_work_is_dropped_and_ctrl_c_ends_the_server_at_once(server):
    import http.client
    import re
    import signal
    import threading

    port = int(re.search(r":(\d+)/", server).group(1))
    process = server.process

    def large(i):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1, source_address=(f"127.0.1.{i + 1}", 0))
        try:
            connection.request("GET", f"/api/faces?n=64&seed={i}")
            connection.getresponse().read()
        except OSError:
            pass  # gave up, as a browser tab closed would
        finally:
            connection.close()

    burst = [threading.Thread(target=large, args=(i,)) for i in range(40)]
    for t in burst:
        t.start()
    for t in burst:
        t.join()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    started = time.perf_counter()
    connection.request("GET", "/api/faces?n=1")
    assert connection.getresponse().status == 200 and time.perf_counter() - started < 2
    for i in range(20):  # work waiting when Ctrl-C comes
        threading.Thread(target=large, args=(i,), daemon=True).start()
    time.sleep(0.3)
    started = time.perf_counter()
    process.send_signal(signal.SIGINT)
    process.wait(timeout=10)
    assert time.perf_counter() - started < 5
    assert "Traceback" not in process.stdout.read()


def test_a_port_in_use_is_one_line(conditional_file, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        from facegan.cli import main

        assert main(["serve", "--checkpoint", str(conditional_file), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert f"port {port} is in use" in captured.err and "serving" not in captured.out
