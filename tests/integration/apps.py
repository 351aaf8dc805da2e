"""Apps served by real uvicorn and gunicorn processes in the integration tests.

Each app exposes `/_records`, answering the records this worker process exported so far (the
bridge is flushed first), so a test can see what the views would have seen.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import otel_bridge
from otel_bridge.record import RequestRecord
from otel_bridge.testing import RecordCollector

collector = RecordCollector()


def summary(record: RequestRecord) -> dict[str, Any]:
    return {
        "method": record.method,
        "route": record.route,
        "path": record.path,
        "status": record.status,
        "bytes": record.response_bytes,
        "completed": record.completed,
        "duration_ns": record.duration_ns,
        "error_type": record.error_type,
        "timers": [dict(timer.tags) for timer in record.timers],
        "pid": record.pid,
        "trace_id": f"{record.trace_id:032x}",
    }


async def user(request: Request) -> Response:
    with otel_bridge.timer(group="db", op="select"):
        await asyncio.sleep(0.001)
    return PlainTextResponse(f"user {request.path_params['uid']} from {os.getpid()}")


async def stream(request: Request) -> Response:
    async def body() -> Any:
        for index in range(3):
            async with otel_bridge.timer(chunk=str(index)):
                await asyncio.sleep(0.01)
            yield b"0123456789"

    return StreamingResponse(body())


_outgoing: Any = None


async def nested(request: Request) -> Response:
    # Nested timers, a request tag, and an httpx call instrumented by the contrib package.
    global _outgoing
    if _outgoing is None:
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

        async def inventory(request: Request) -> Response:
            return PlainTextResponse("42")

        _outgoing = httpx.AsyncClient(
            transport=httpx.ASGITransport(Starlette(routes=[Route("/stock", inventory)])),
            base_url="http://inventory.internal",
        )
        HTTPXClientInstrumentor().instrument_client(_outgoing)
    otel_bridge.tag(customer="acme")
    with otel_bridge.timer(group="order", op="load"):
        with otel_bridge.timer(group="db", op="select", table="orders"):
            await asyncio.sleep(0.002)
        stock = (await _outgoing.get("/stock")).text
    return PlainTextResponse(f"stock {stock}")


async def sleepy(request: Request) -> Response:
    otel_bridge.wide_event.set(step="waiting on the mainframe")
    with otel_bridge.timer(group="mainframe", op="call"):
        await asyncio.sleep(float(request.path_params["seconds"]))
    return PlainTextResponse("woke up")


async def fail(request: Request) -> Response:
    raise RuntimeError("boom")


async def records(request: Request) -> Response:
    asgi_app.bridge.force_flush(5_000)
    return JSONResponse({"pid": os.getpid(), "records": [summary(r) for r in collector.records]})


asgi_app: Any = otel_bridge.instrument(
    Starlette(
        routes=[
            Route("/users/{uid}", user),
            Route("/stream", stream),
            Route("/fail", fail),
            Route("/nested", nested),
            Route("/sleep/{seconds}", sleepy),
            Route("/_records", records),
        ]
    ),
    record_exporters=[collector],
    excluded_urls="^/_records$",
)


def _wsgi(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    path = environ["PATH_INFO"]
    if path == "/_records":
        wsgi_app.bridge.force_flush(5_000)
        body = json.dumps({"pid": os.getpid(), "records": [summary(r) for r in collector.records]})
        start_response("200 OK", [("Content-Type", "application/json")])
        yield body.encode()
        return
    if path == "/fail":
        raise RuntimeError("boom")
    if path == "/die":
        # A worker dying outright mid-request (a segfaulting extension, the OOM killer).
        os.kill(os.getpid(), signal.SIGKILL)
    if path.startswith("/sleep/"):
        yield _sleepy_wsgi(float(path.rsplit("/", 1)[1]), start_response)
        return
    start_response("200 OK", [("Content-Type", "text/plain")])
    for index in range(2):
        with otel_bridge.timer(chunk=str(index)):
            time.sleep(0.005)
        yield f"{os.getpid()}\n".encode()


def _sleepy_wsgi(seconds: float, start_response: Any) -> bytes:
    otel_bridge.wide_event.set(step="waiting on the mainframe")
    with otel_bridge.timer(group="mainframe", op="call"):
        time.sleep(seconds)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return b"woke up"


wsgi_app: Any = otel_bridge.instrument_wsgi(
    _wsgi, record_exporters=[collector], excluded_urls="^/_records$"
)
