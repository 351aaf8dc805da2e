"""No request leaves a reference cycle behind: memory is freed by reference counting, at once,
and the cyclic GC has nothing to do on the request path (a cycle per request once cost ~4 µs)."""

from __future__ import annotations

import gc
import socket
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


async def endpoint(request: Any) -> PlainTextResponse:
    otel_bridge.tag(kind="x")
    otel_bridge.wide_event.set(n=request.path_params["n"])
    with otel_bridge.timer(group="db"):
        pass
    return PlainTextResponse("ok")


def all_views(tmp_path: Path, port: int) -> otel_bridge.Settings:
    return otel_bridge.Settings(exporters=("expvar", "pinba", "wide_events")).replace(
        wide_events_sink=f"file:{tmp_path / 'events.jsonl'}",
        pinba_endpoint=f"127.0.0.1:{port}",
    )


def scope(n: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/n/{n}",
        "raw_path": f"/n/{n}".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t"), (b"x-request-id", b"r")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }


# Requests are driven straight through the ASGI/WSGI interfaces: HTTP clients (httpx) leave
# cycles of their own behind.
async def test_asgi_requests_leave_no_cycles(harness: Harness, tmp_path: Path) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pinba:
        pinba.bind(("127.0.0.1", 0))
        app = harness.asgi(
            Starlette(routes=[Route("/n/{n}", endpoint)]),
            settings=all_views(tmp_path, pinba.getsockname()[1]),
        )
        for n in range(50):
            await app(scope(n), receive, send)
        app.bridge.force_flush()
        gc.collect()
        gc.disable()
        try:
            for n in range(300):
                await app(scope(n), receive, send)
            app.bridge.force_flush()
            leftovers = gc.collect()
        finally:
            gc.enable()
    assert leftovers == 0


def test_wsgi_requests_leave_no_cycles(harness: Harness, tmp_path: Path) -> None:
    def wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        otel_bridge.wide_event.set(path=environ["PATH_INFO"])
        with otel_bridge.timer(group="db"):
            pass
        start_response("200 OK", [])
        return [b"ok"]

    def call(n: int) -> None:
        environ = {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": f"/n/{n}",
            "QUERY_STRING": "",
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "REMOTE_ADDR": "127.0.0.1",
        }
        body = app(environ, lambda status, headers, exc_info=None: None)
        for _ in body:
            pass
        getattr(body, "close", lambda: None)()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pinba:
        pinba.bind(("127.0.0.1", 0))
        app = harness.wsgi(wsgi, settings=all_views(tmp_path, pinba.getsockname()[1]))
        for n in range(50):
            call(n)
        app.bridge.force_flush()
        gc.collect()
        gc.disable()
        try:
            for n in range(300):
                call(n)
            app.bridge.force_flush()
            leftovers = gc.collect()
        finally:
            gc.enable()
    assert leftovers == 0
