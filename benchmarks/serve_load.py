"""`facegan serve` under load, on 127.0.0.1 only: N clients each ask for the largest
request (64 faces) and give up after a few seconds, while one client keeps asking for one
face; prints the small request's latency (p50, p99, worst), how the large ones were
answered, the server's memory before, at the peak and after, its threads, and how long
Ctrl-C takes to end it. One JSON line.

    python benchmarks/serve_load.py [--clients 200] [--abandon 3] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_and_threads(pid: int) -> tuple[float, int]:
    """Resident MB and thread count of a process (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


def get(port: int, path: str, timeout: float, client: int = 0) -> int:
    """The status of a GET, from the loopback address 127.0.<client // 250>.<client % 250 + 1>
    (so that each client is one address, as on a network)."""
    source = (f"127.0.{client // 250}.{client % 250 + 1}", 0) if client else None
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=source)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="clients asking for 64 faces each")
    parser.add_argument("--abandon", type=float, default=3.0, help="seconds before each gives up")
    parser.add_argument("--small", type=int, default=60, help="small requests timed during the burst")
    parser.add_argument("--checkpoint", help="default: the shipped model")
    args = parser.parse_args()
    port = free_port()
    command = [sys.executable, "-m", "facegan", "serve", "--port", str(port), "--threads", "1"]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get(port, "/api/model", 2)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start: {server.stdout.read() if server.poll() else ''}")
                time.sleep(0.2)
        get(port, "/api/faces?n=1", 30)  # warm
        before_mb, before_threads = memory_and_threads(server.pid)

        outcomes: dict[str, int] = {}
        lock = threading.Lock()

        def large(i: int) -> None:
            try:
                what = str(get(port, f"/api/faces?n=64&seed={i}", args.abandon, client=i + 1))
            except (TimeoutError, socket.timeout):
                what = "abandoned"
            except OSError as e:
                what = type(e).__name__
            with lock:
                outcomes[what] = outcomes.get(what, 0) + 1

        peak = [before_mb, before_threads]

        def watch() -> None:
            while any(t.is_alive() for t in burst):
                mb, threads = memory_and_threads(server.pid)
                peak[0], peak[1] = max(peak[0], mb), max(peak[1], threads)
                time.sleep(0.2)

        burst = [threading.Thread(target=large, args=(i,)) for i in range(args.clients)]
        for t in burst:
            t.start()
        watcher = threading.Thread(target=watch)
        watcher.start()
        latencies, small_status = [], {}
        for i in range(args.small):
            started = time.perf_counter()
            status = get(port, f"/api/faces?n=1&seed={10_000 + i}", 30)
            latencies.append(time.perf_counter() - started)
            small_status[str(status)] = small_status.get(str(status), 0) + 1
            time.sleep(0.05)
        for t in burst:
            t.join()
        watcher.join()
        time.sleep(2)  # abandoned work is dropped at its next chunk
        after_mb, after_threads = memory_and_threads(server.pid)
        latencies.sort()
        started = time.perf_counter()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        stopped_s = time.perf_counter() - started
        output = server.stdout.read()
        print(json.dumps({
            "bench": "serve_load", "clients": args.clients, "abandon_s": args.abandon, "cpus": os.cpu_count(),
            "small_p50_s": round(latencies[len(latencies) // 2], 3),
            "small_p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
            "small_max_s": round(latencies[-1], 3), "small_answers": small_status, "large_answers": outcomes,
            "memory_mb": {"before": round(before_mb, 1), "peak": round(peak[0], 1), "after": round(after_mb, 1)},
            "threads": {"before": before_threads, "peak": peak[1], "after": after_threads},
            "shutdown_s": round(stopped_s, 2), "exit_code": server.returncode,
            "traceback_lines": output.count("Traceback"),
        }))
    finally:
        if server.poll() is None:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
