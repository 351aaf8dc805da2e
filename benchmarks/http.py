"""Over-HTTP driver: a real server in a subprocess on 127.0.0.1, `wrk` as the load generator.

ASGI apps are served by uvicorn (one process), the WSGI app by gunicorn (one sync worker), so
the server and wrk each have one of the machine's two cores.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gunicorn_command(port: int, workers: int = 1, hooks: bool = False) -> list[str]:
    """gunicorn serving the benchmark app with `workers` sync workers, with otel_bridge's
    server hooks (the scoreboard) if `hooks`."""
    config = ["-c", "python:otel_bridge.gunicorn"] if hooks else []
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "benchmarks.serve:app",
        *config,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]


def _server_command(app_name: str, port: int) -> list[str]:
    if app_name == "wsgi":
        return gunicorn_command(port)
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "benchmarks.serve:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]


def wrk(port: int, seconds: int, connections: int = 16, path: str = "/hello") -> dict[str, float]:
    """One wrk run (1 thread, keep-alive) against 127.0.0.1:`port`: requests, req/s, p50, p99."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    requests = re.search(r"(\d+) requests in", out)
    return {
        "requests": float(requests.group(1)) if requests else 0.0,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_ms": latency_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99_ms": latency_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
    }


def latency_ms(text: str) -> float:
    """A latency as wrk prints it (`850.00us`, `1.20ms`), in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


@contextmanager
def served(
    app_name: str,
    config: str,
    extra: Mapping[str, str] | None = None,
    stdout: Any = None,
    command: Callable[[int], list[str]] | None = None,
) -> Iterator[int]:
    """The benchmark app `app_name` in configuration `config`, served on 127.0.0.1 (uvicorn,
    or gunicorn for WSGI) for the block; yields its port. `extra`: more environment;
    `stdout`: where the server's standard output goes (default /dev/null); `command`: the
    server's command for a port, instead of the default one."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(BENCH_APP=app_name, BENCH_CONFIG=config, PYTHONPATH=str(ROOT), **(extra or {}))
    server = subprocess.Popen(
        (command or (lambda port: _server_command(app_name, port)))(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL if stdout is None else stdout,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"server did not start: {server.stderr}") from None
                time.sleep(0.05)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()


def cell(app_name: str, config: str, duration_s: int = 5, connections: int = 16) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk")
    with served(app_name, config) as port:
        url = f"http://127.0.0.1:{port}/hello"
        # Warm up, then measure.
        subprocess.run(
            ["wrk", "-t1", f"-c{connections}", "-d1s", url], capture_output=True, check=True
        )
        result = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration_s}s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        )
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "app": app_name,
        "config": config,
        "rps": rps,
        "p50_ms": latency_ms(p50),
        "p99_ms": latency_ms(p99),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }
