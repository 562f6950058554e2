"""Every lesson runs at a small scale and still shows what it teaches; the command and
the live page behave."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facegan import lessons
from facegan.cli import main
from tests.test_serve import CHROMIUM, CHROMIUM_FLAGS, free_port


def run(number: int, tmp_path: Path, scale: float, fixes: tuple[str, ...] = (), seed: int = 0) -> dict:
    outcome = lessons.run(lessons.find(number), tmp_path, seed, fixes, scale)
    for path in outcome.figures.values():
        assert path.is_file() and path.stat().st_size > 1000, path
    assert outcome.text.strip()
    return outcome.numbers


@pytest.mark.slow
def test_lesson_1_g_learns_the_ring_from_d_alone(tmp_path):
    n = run(1, tmp_path, 0.34)
    assert n["modes_start"] <= 1 and n["modes_end"] >= 5
    assert n["on_mode_end"] > n["on_mode_start"] + 0.4
    assert (tmp_path / "1-game" / "game.gif").stat().st_size > 10_000


def test_lesson_2_the_minimax_gradient_vanishes_where_the_nonsaturating_one_does_not(tmp_path):
    n = run(2, tmp_path, 0.1)
    assert n["d_fake_start"] < 0.05  # D is confident: the situation the lesson is about
    assert n["gradient_nonsaturating"] > 100 * n["gradient_minimax"]
    assert 0 < n["escaped_nonsaturating"] < (n["escaped_minimax"] if n["escaped_minimax"] > 0 else 10**9)


@pytest.mark.slow
def test_lesson_3_the_slow_discriminator_collapses_and_equal_rates_cover_the_modes(tmp_path):
    n = run(3, tmp_path, 0.34, fixes=("equal_lr",))
    assert n["modes_collapsing"] <= 2
    assert n["modes_equal_lr"] >= 5
    assert n["mean_modes_equal_lr"] > n["mean_modes_collapsing"] + 2


def test_lesson_4_the_plain_game_circles_and_r1_settles_it(tmp_path):
    n = run(4, tmp_path, 1.0)
    assert n["distance_plain"] > 0.1 and n["turns_plain"] > 1
    assert n["distance_r1"] < 0.01 and n["loss_swing_r1"] < 0.1 * n["loss_swing_plain"]


def test_lesson_5_only_uneven_overlaps_and_unequal_kernels_make_checkerboards(tmp_path):
    n = run(5, tmp_path, 1.0)
    assert n["overlap_range_k3"] > 0 and n["overlap_range_k4"] == 0
    assert n["checkerboard_transposed"] > 0.5 > 0.05 > n["checkerboard_resize_conv"]
    assert n["checkerboard_thesis_untrained"] > 0.3


@pytest.mark.slow
def test_lesson_6_every_variant_trains_towards_the_faces(tmp_path):
    n = run(6, tmp_path, 0.1, fixes=("ema",))
    assert set(n) >= {"swd_untrained", "swd_thesis", "swd_ema"}
    assert n["swd_thesis"] < n["swd_untrained"] and n["swd_ema"] < n["swd_untrained"]


def test_the_same_seed_gives_the_same_lesson_and_another_seed_another(tmp_path):
    first = run(2, tmp_path / "a", 0.05, seed=3)
    again = run(2, tmp_path / "b", 0.05, seed=3)
    other = run(2, tmp_path / "c", 0.05, seed=4)
    assert first == again and first != other
    written = json.loads((tmp_path / "a" / "2-gradients" / "numbers.json").read_text())
    assert written["seed"] == 3 and written["gradient_minimax"] == first["gradient_minimax"]


def test_the_command_lists_runs_and_says_where_the_figures_are(tmp_path, capsys):
    assert main(["lesson", "--list"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("\n") == len(lessons.lessons()) and "--fix r1, spectral_norm" in listed
    assert main(["lesson", "5", "--out", str(tmp_path), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "5-upsampling" / "layers.png") in printed and "in code:" in printed
    assert (tmp_path / "5-upsampling" / "lesson.txt").read_text().startswith("5. Convolution")


@pytest.mark.parametrize("argv, message", [
    (["lesson", "9"], "there is no lesson 9"),
    (["lesson", "3", "--fix", "dropout"], "lesson 3 has no fix 'dropout'"),
    (["lesson", "--fix", "r1"], "--fix needs a lesson number"),
    (["lesson", "4", "--seed", "-1"], "--seed must be 0 or more"),
    (["lesson", "4", "--scale", "0"], "scale must be in (0, 1]"),
])
def test_bad_lesson_arguments_are_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.fixture
def lesson_client():
    from starlette.testclient import TestClient

    from facegan.web.lesson import create_lesson_app

    with TestClient(create_lesson_app(), base_url="http://127.0.0.1:8000") as c:
        yield c


def test_the_live_lesson_steps_restarts_with_fixes_and_refuses_bad_requests(lesson_client):
    c = lesson_client
    start = c.get("/api/lesson").json()
    assert start["step"] == 0 and len(start["surface"]) == start["side"] ** 2 and len(start["fake"]) == 256
    stepped = c.post("/api/lesson/step?n=50").json()
    assert stepped["step"] == 50 and stepped["fake"] != start["fake"] and stepped["history"]
    fresh = c.post("/api/lesson/reset?setup=collapsing&loss=minimax&fix=r1,mbstd&seed=2").json()
    assert (fresh["step"], fresh["setup"], fresh["loss"], fresh["fixes"], fresh["seed"]) == (
        0, "collapsing", "minimax", ["r1", "mbstd"], 2)
    for query, message in (("step?n=0", "n must be"), ("step?n=101", "n must be"), ("reset?setup=big", "setup must"),
                           ("reset?loss=wgan", "loss must"), ("reset?fix=dropout", "fix must"),
                           ("reset?fix=r1,r1", "fix must")):
        response = c.post(f"/api/lesson/{query}")
        assert response.status_code == 400 and message in response.json()["error"], query
    assert c.get("/api/lesson/step").status_code == 405  # training changes state: POST only
    assert c.post("/api/lesson/step", headers={"host": "evil.example"}).status_code == 400
    assert c.post("/api/lesson/step", headers={"sec-fetch-site": "cross-site"}).status_code == 403
    page = c.get("/")
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
def lesson_server():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "facegan", "serve", "--lesson", "--port", str(port),
                                "--threads", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    line = process.stdout.readline()
    assert "serving the live lesson" in line, line + process.stdout.read()
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(timeout=20)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (Debian: apt-get install chromium)")
def test_the_live_lesson_trains_in_a_real_browser(lesson_server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

    def step(page) -> int:
        return int(page.get_attribute("#plane", "data-step") or -1)

    def colours(page) -> int:  # distinct colours drawn on the plane: a heat map and dots, not a blank canvas
        return page.evaluate("() => { const c = document.getElementById('plane');"
                             " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                             " const seen = new Set(); for (let i = 0; i < d.length; i += 16)"
                             " seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]); return seen.size; }")

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(lesson_server)
        page.wait_for_function("() => document.getElementById('plane').dataset.step === '0'")
        page.click("#step")
        page.wait_for_function("() => document.getElementById('plane').dataset.step === '10'")
        page.click("#play")
        page.wait_for_function("() => Number(document.getElementById('plane').dataset.step) >= 600", timeout=60_000)
        page.click("#play")  # pause: the steps stop
        time.sleep(1.0)
        paused = step(page)
        time.sleep(1.0)
        assert step(page) == paused and colours(page) > 50
        assert "modes" in page.text_content("#status")
        page.screenshot(path=str(tmp_path / "lesson.png"), full_page=True)

        with page.expect_response(lambda r: "/api/lesson/reset" in r.url and "fix=r1" in r.url and r.ok):
            page.check(".fix[value=r1]")  # a fix restarts the game with it
        page.wait_for_function("() => document.getElementById('status').textContent.includes('fixes: r1')")
        assert step(page) == 0
        with page.expect_response(lambda r: "setup=collapsing" in r.url and r.ok):
            page.select_option("#setup", "collapsing")
        assert not errors, errors
        browser.close()
