"""Start real servers in subprocesses on 127.0.0.1 and stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_path() -> str:
    """This checkout first, then whatever PYTHONPATH the tests run with (a run against another
    Django puts that Django there, and the servers must import it too)."""
    return os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)


def run_python(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python ARGS` from this checkout in a clean environment (no OTEL_* or test variables),
    output captured as text; the caller checks the return code."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={"PYTHONPATH": python_path(), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(
    args: Sequence[str], port: int, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[subprocess.Popen[str]]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = python_path()
    environment["OTEL_BRIDGE_EXPORTERS"] = "none"  # tests that want a view say so
    environment.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                out, err = process.communicate()
                raise RuntimeError(f"server exited early:\n{out}\n{err}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server on port {port} did not start") from None
                time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)  # also closes the pipes
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        except ValueError:
            pass  # stop() already collected the output


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the server and return its output once it has exited."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=30)


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes as they are (for requests an HTTP client would refuse to build)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def uvicorn(app: str, port: int, *extra: str) -> list[str]:
    """Arguments for `python -m` serving `app` with uvicorn on 127.0.0.1:`port`."""
    return [
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]


def gunicorn(app: str, port: int, *extra: str, hooks: bool = True) -> list[str]:
    """Arguments for `python -m` serving `app` with gunicorn on 127.0.0.1:`port`, with
    otel_bridge's server hooks unless `hooks` is false."""
    config = ["-c", "python:otel_bridge.gunicorn"] if hooks else []
    return [
        "gunicorn",
        app,
        *config,
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *extra,
    ]
