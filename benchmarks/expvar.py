"""`/debug/vars` latency: ours (uvicorn) against Go's own expvar handler, same variables.

Both servers run at once; wrk measures each for a few seconds, alternating, three rounds;
medians of the per-round median latencies are reported. Also the cost of our GC callback per
collection.
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.expvar_app import spec

ROOT = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(port)


def _latency_ms(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    value, unit = re.search(r"^\s+50%\s+([\d.]+)(us|ms|s)", out, re.M).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def gc_callback_cost(collections: int = 2000) -> dict[str, float]:
    """µs added to a generation-0 collection by our callback."""
    from otel_bridge.exporters.expvar._memstats import GCMonitor

    def timed() -> float:
        start = time.perf_counter()
        for _ in range(collections):
            gc.collect(0)
        return (time.perf_counter() - start) / collections * 1e6

    without = statistics.median(timed() for _ in range(3))
    monitor = GCMonitor()
    monitor.install()
    try:
        with_callback = statistics.median(timed() for _ in range(3))
    finally:
        monitor.uninstall()
    return {"without_us": without, "with_us": with_callback, "cost_us": with_callback - without}


def run(count: int = 1000, seconds: int = 3, rounds: int = 3) -> dict[str, Any]:
    go = shutil.which("go")
    if go is None or shutil.which("wrk") is None:
        raise RuntimeError("needs golang-go and wrk (make bench installs them)")
    sys.path.insert(0, str(ROOT))
    from tests.exporters.expvar.goref import build, serve

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        binary = build(directory)
        port = _port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(BENCH_VARS=str(count), PYTHONPATH=str(ROOT))
        ours = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.expvar_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait(port)
            with serve(binary, spec(count), directory) as go_url:
                urls = {"go": go_url + "/debug/vars", "ours": f"http://127.0.0.1:{port}/debug/vars"}
                sizes = {}
                import urllib.request

                for name, url in urls.items():
                    with urllib.request.urlopen(url) as response:
                        sizes[name] = len(response.read())
                samples: dict[str, list[float]] = {"go": [], "ours": []}
                for _ in range(rounds):
                    for name in ("go", "ours"):
                        samples[name].append(_latency_ms(urls[name], seconds))
        finally:
            ours.send_signal(signal.SIGTERM)
            ours.communicate(timeout=20)
    go_ms = statistics.median(samples["go"])
    ours_ms = statistics.median(samples["ours"])
    return {
        "vars": count,
        "go_ms": go_ms,
        "ours_ms": ours_ms,
        "ratio": ours_ms / go_ms,
        "go_bytes": sizes["go"],
        "ours_bytes": sizes["ours"],
        **gc_callback_cost(),
    }


if __name__ == "__main__":
    print(run())
