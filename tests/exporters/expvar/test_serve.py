from __future__ import annotations

import gc
import json
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge
from tests.conftest import Harness

pytestmark = pytest.mark.anyio
TOKEN = "correct-horse-battery-staple"


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hi")


def settings(**overrides: Any) -> otel_bridge.Settings:
    return otel_bridge.Settings(exporters=("expvar",)).replace(**overrides)


def client(app: Any, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=(peer, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def test_asgi_serves_vars_without_recording_them(harness: Harness) -> None:
    app = harness.asgi(Starlette(routes=[Route("/hi", hello)]), settings=settings())
    async with client(app) as c:
        for _ in range(3):
            await c.get("/hi")
        await c.get("/nowhere")
        app.bridge.force_flush()
        response = await c.get("/debug/vars?ignored=1")
        head = await c.head("/debug/vars")
        post = await c.post("/debug/vars")
        slash = await c.get("/debug/vars/")
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    document = json.loads(response.text)
    assert document["requests"]["by_route"]["/hi"]["count"] == 3
    assert document["requests"]["by_route"]["<unmatched>"]["4xx"] == 1
    assert document["requests"]["total"]["count"] == 4, "reads of /debug/vars are not requests"
    assert document["otel_bridge"]["exporters"] == ["expvar", "scoreboard", "collector"]
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) > 1000
    assert post.status_code == 200, "Go's handler answers any method"
    assert slash.status_code == 404, "only the exact path, as Go"
    assert len(harness.records()) == 5, "/debug/vars/ is the app's, and recorded"


async def test_clients_outside_loopback_are_refused_and_counted(harness: Harness) -> None:
    app = harness.asgi(Starlette(routes=[Route("/hi", hello)]), settings=settings())
    async with client(app, peer="203.0.113.9") as c:
        refused = await c.get("/debug/vars")
        spoofed = await c.get("/debug/vars", headers={"x-forwarded-for": "127.0.0.1"})
    assert (refused.status_code, spoofed.status_code) == (403, 403)
    assert "memstats" not in refused.text
    assert app.bridge.health.counts["expvar.refused"] == 2


async def test_token_and_path_come_from_the_environment(harness: Harness) -> None:
    configured = otel_bridge.Settings.from_env(
        {
            "OTEL_BRIDGE_EXPORTERS": "expvar",
            "OTEL_EXPORTER_EXPVAR_PATH": "/internal/vars",
            "OTEL_EXPORTER_EXPVAR_TOKEN": TOKEN,
        }
    )
    app = harness.asgi(Starlette(routes=[Route("/hi", hello)]), settings=configured)
    async with client(app, peer="198.51.100.4") as c:
        assert (await c.get("/internal/vars")).status_code == 403
        ok = await c.get("/internal/vars", headers={"authorization": f"Bearer {TOKEN}"})
        assert (await c.get("/debug/vars")).status_code == 404
    assert ok.status_code == 200 and "memstats" in ok.json()


def test_wsgi_serves_vars_too(harness: Harness) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    wrapped = harness.wsgi(app, settings=settings())
    transport = httpx.WSGITransport(wrapped, remote_addr="127.0.0.1")
    with httpx.Client(transport=transport, base_url="http://localhost") as c:
        c.get("/x")
        wrapped.bridge.force_flush()
        document = c.get("/debug/vars").json()
        refused = httpx.Client(
            transport=httpx.WSGITransport(wrapped, remote_addr="10.9.9.9"),
            base_url="http://localhost",
        ).get("/debug/vars")
    assert document["requests"]["total"]["count"] == 1
    assert refused.status_code == 403


async def test_gc_pauses_are_measured_as_a_256_slot_ring(harness: Harness) -> None:
    app = harness.asgi(Starlette(routes=[Route("/hi", hello)]), settings=settings())
    monitor = app.bridge.expvar.monitor
    before = monitor.num_gc
    for _ in range(300):
        gc.collect(0)
    async with client(app) as c:
        stats = (await c.get("/debug/vars")).json()["memstats"]
    assert stats["NumGC"] >= before + 300 > 256
    assert stats["LastGC"] == stats["PauseEnd"][(stats["NumGC"] + 255) % 256]
    assert all(pause > 0 for pause in stats["PauseNs"]), "the ring has wrapped: all slots used"
    assert stats["PauseTotalNs"] >= sum(stats["PauseNs"])
    assert stats["EnableGC"] is True
    monitor.uninstall()
