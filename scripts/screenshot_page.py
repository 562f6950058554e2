"""A screenshot of `facegan serve`'s page, as the docs show it.

    python scripts/screenshot_page.py [--model celeba64] [--out docs/serve.png] [--attr Male=1 for a conditional model]

Starts the server as `facegan serve` would (a real uvicorn on a free local port), opens
the page in headless Chromium (Debian's, driven by Playwright), sets any attributes
asked for, waits until every face is drawn and saves the page as PNG.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="celeba64")
    parser.add_argument("--out", default="docs/serve.png")
    parser.add_argument("--attr", default="", help="attributes to set on the page, e.g. Male=1,Smiling=1")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no Chromium here (Debian: apt-get install chromium)")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "facegan", "serve", "--model", args.model, "--port", str(port)])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                              "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("img.face")
            for part in filter(None, args.attr.split(",")):
                name, value = part.split("=")
                page.select_option(f"#attr-{name}", value)
            page.fill("#seed", str(args.seed))
            page.dispatch_event("#seed", "change")
            page.wait_for_function(f"() => document.getElementById('faces').dataset.seed === '{args.seed}'")
            page.wait_for_function("() => [...document.querySelectorAll('img.face')].every(i => i.complete && i.naturalWidth > 0)"
                                   " && document.getElementById('between').naturalWidth > 0")
            page.screenshot(path=args.out, full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
