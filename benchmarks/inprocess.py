"""In-process driver: a tight loop over prebuilt ASGI scopes / WSGI environs, no sockets.

`python -m benchmarks.inprocess APP CONFIG [N]` runs one cell in this process and prints one
JSON line: wall and CPU microseconds per request (CPU includes background threads: the batch
span processor's and ours, flushed before the clock stops).
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import sys
import time
from typing import Any

from benchmarks.apps import build

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/hello",
    "raw_path": b"/hello",
    "root_path": "",
    "query_string": b"",
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"bench/1.0"),
        (b"accept", b"*/*"),
    ],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
}

ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/hello",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "50000",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": io.StringIO(),
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def run_asgi(app: Any, n: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    async def loop() -> None:
        for _ in range(n):
            await app(dict(SCOPE), receive, send)

    asyncio.run(loop())


def run_wsgi(app: Any, n: int) -> None:
    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    for _ in range(n):
        environ = dict(ENVIRON)
        environ["wsgi.input"] = io.BytesIO()
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()


def cell(app_name: str, config: str, n: int = 20_000, warmup: int = 2_000) -> dict[str, Any]:
    app, flush, exported = build(app_name, config)
    drive = run_wsgi if app_name == "wsgi" else run_asgi
    drive(app, warmup)
    flush()
    collector = _GCClock()
    gc.callbacks.append(collector)
    wall0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
    drive(app, n)
    thread = time.thread_time() - thread0
    flush()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    gc.callbacks.remove(collector)
    return {
        "app": app_name,
        "config": config,
        "n": n,
        "wall_us": wall / n * 1e6,
        "cpu_us": cpu / n * 1e6,
        # CPU of the thread that served the requests: the part a request waits for.
        "request_cpu_us": thread / n * 1e6,
        # Time in the cyclic garbage collector (any thread), part of cpu_us.
        "gc_us": collector.seconds / n * 1e6,
        "spans_per_request": exported() / (n + warmup),
        # Records the bridge dropped (a full queue): they skip the export work, so any here
        # would make the cell look cheaper than it is. The harness refuses such a run.
        "dropped": _dropped(app),
    }


class _GCClock:
    """A `gc.callbacks` entry that adds up the time of the collections it sees."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def _dropped(app: Any) -> int:
    bridge = getattr(app, "bridge", None)
    if bridge is None:
        return 0
    return sum(bridge.health.dropped.values())


if __name__ == "__main__":
    app_name, config = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
    print(json.dumps(cell(app_name, config, n)))
