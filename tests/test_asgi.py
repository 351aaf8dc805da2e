from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import otel_bridge
import otel_bridge._lanes
from otel_bridge.record import RecordExporter

from .conftest import FailingExporter, Harness, make_harness

pytestmark = pytest.mark.anyio


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=kwargs.pop("client", ("10.1.2.3", 5555)))
    return httpx.AsyncClient(transport=transport, base_url="http://example.com:8080", **kwargs)


async def user(request: Any) -> PlainTextResponse:
    with otel_bridge.timer(group="db", op="select", table="users"):
        await asyncio.sleep(0)
    return PlainTextResponse(f"user {request.path_params['uid']}")


async def boom(request: Any) -> Response:
    raise KeyError("missing")


def starlette_app() -> Starlette:
    inner = Starlette(routes=[Route("/items/{item_id:int}", user_item)])
    return Starlette(
        routes=[
            Route("/users/{uid}", user),
            Route("/boom", boom),
            Mount("/api/v1", app=inner),
        ]
    )


async def user_item(request: Any) -> PlainTextResponse:
    return PlainTextResponse("item")


async def test_starlette_request_becomes_one_server_span_and_one_record(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    async with client(app) as c:
        response = await c.get("/users/42?q=1", headers={"user-agent": "probe/1"})
    assert response.text == "user 42"

    [record] = harness.records()
    assert (record.method, record.route, record.path, record.query) == (
        "GET",
        "/users/{uid}",
        "/users/42",
        "q=1",
    )
    assert record.status == 200
    assert record.response_bytes == len(b"user 42")
    assert record.completed
    assert record.server_address == "example.com" and record.server_port == 8080
    assert record.client_address == "10.1.2.3" and record.client_port == 5555
    assert record.headers["user-agent"] == "probe/1"
    assert 0 < record.duration_ns <= record.app_duration_ns

    server = [s for s in harness.finished_spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 1, "no send/receive internal spans, exactly one server span"
    span = server[0]
    assert span.name == "GET /users/{uid}"
    assert span.attributes is not None
    assert dict(span.attributes) == {
        "http.request.method": "GET",
        "url.path": "/users/42",
        "url.query": "q=1",
        "url.scheme": "http",
        "server.address": "example.com",
        "server.port": 8080,
        "http.route": "/users/{uid}",
        "http.response.status_code": 200,
        "user_agent.original": "probe/1",
        "client.address": "10.1.2.3",
        "client.port": 5555,
        "network.protocol.version": "1.1",
    }
    assert record.trace_id == span.context.trace_id
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == record.duration_ns


async def test_timer_inside_request_becomes_a_tagged_timer_of_its_record(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    async with client(app) as c:
        await c.get("/users/7")
    [record] = harness.records()
    [timer] = record.timers
    assert timer.kind == "db", "its group, as in every view"
    assert dict(timer.tags) == {"group": "db", "op": "select", "table": "users"}
    assert timer.hit_count == 1
    assert 0 < timer.duration_ns <= record.duration_ns
    assert timer.start_ns <= record.duration_ns
    spans = {s.name: s for s in harness.finished_spans()}
    child = spans["db select users"]
    assert child.parent is not None
    assert child.parent.span_id == spans["GET /users/{uid}"].context.span_id


async def test_route_templates_include_mount_prefixes_and_stay_unset_when_unmatched(
    harness: Harness, tmp_path: Any
) -> None:
    (tmp_path / "a.txt").write_text("static")
    app = starlette_app()
    app.routes.append(Mount("/static", app=StaticFiles(directory=tmp_path)))
    wrapped = harness.asgi(app)
    async with client(wrapped) as c:
        assert (await c.get("/api/v1/items/3")).status_code == 200
        assert (await c.get("/static/a.txt")).text == "static"
        assert (await c.get("/nowhere")).status_code == 404
    routes = [(r.path, r.route, r.status) for r in harness.records()]
    assert routes == [
        ("/api/v1/items/3", "/api/v1/items/{item_id}", 200),
        ("/static/a.txt", "/static", 200),
        ("/nowhere", None, 404),
    ]
    names = sorted(s.name for s in harness.finished_spans())
    assert names == ["GET", "GET /api/v1/items/{item_id}", "GET /static"]


async def test_fastapi_routes_carry_every_router_prefix_and_mounts_their_path(
    harness: Harness,
) -> None:
    # The layout FastAPI apps have: routers inside routers with prefixes, a mounted FastAPI
    # app, StaticFiles. FastAPI keeps an included route's own template, so without its
    # router's prefixes `/users/{uid}` would name /api/v1/users/3.
    from examples.shop.app import shop

    wrapped = harness.asgi(shop)
    bearer = {"authorization": "Bearer t"}
    sent = [
        ("GET", "/api/v1/users/3", {}),
        ("GET", "/api/v1/orders/3", {}),
        ("POST", "/api/v1/orders/sold-out-1", bearer),
        ("DELETE", "/api/v1/users/3", {}),
        ("GET", "/admin/stats", {}),
        ("GET", "/admin/nowhere", {}),
        ("GET", "/static/css/site.css", {}),
        ("GET", "/static/missing.css", {}),
        ("GET", "/api/v1/users/3/", {}),
        ("GET", "/nowhere", {}),
    ]
    async with client(wrapped) as c:
        for method, path, headers in sent:
            await c.request(method, path, headers=headers)
    routes = [(r.path, r.status, r.route) for r in harness.records()]
    assert routes == [
        ("/api/v1/users/3", 200, "/api/v1/users/{uid}"),
        ("/api/v1/orders/3", 401, "/api/v1/orders/{order_id}"),
        ("/api/v1/orders/sold-out-1", 409, "/api/v1/orders/{sku}"),
        ("/api/v1/users/3", 405, "/api/v1/users/{uid}"),
        ("/admin/stats", 200, "/admin/stats"),
        ("/admin/nowhere", 404, "/admin"),
        ("/static/css/site.css", 200, "/static"),
        ("/static/missing.css", 404, "/static"),
        ("/api/v1/users/3/", 307, None),  # redirect_slashes: no route, a bounded label
        ("/nowhere", 404, None),
    ]
    names = [s.name for s in harness.finished_spans() if s.kind is SpanKind.SERVER]
    assert names[0] == "GET /api/v1/users/{uid}"
    assert names[-2:] == ["GET", "GET"]


@pytest.mark.parametrize("spec", ["2.3", "2.4"])
async def test_a_client_leaving_mid_response_is_marked_on_the_span(
    harness: Harness, spec: str
) -> None:
    # A server of ASGI spec 2.3 tells the app with http.disconnect: Starlette's
    # StreamingResponse stops and returns normally, a response started (200) and never ended.
    # From 2.4 the server's send raises OSError, which Starlette turns into ClientDisconnect.
    from examples.shop.app import shop

    wrapped = harness.asgi(shop)
    bodies = 0
    gone = asyncio.Event()

    async def receive() -> dict[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal bodies
        if gone.is_set() and spec == "2.4":
            raise OSError("client disconnected")
        if message["type"] == "http.response.body":
            bodies += 1
            if bodies == 2:
                gone.set()  # two events read, then the client goes away

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/feed",
        "raw_path": b"/api/v1/feed",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"shop.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    try:
        await asyncio.wait_for(wrapped(scope, receive, send), 10)
    except Exception as exc:  # noqa: BLE001 - what the app raised, checked below
        raised: str | None = type(exc).__name__
    else:
        raised = None
    expected = "response_incomplete" if spec == "2.3" else "ClientDisconnect"
    assert raised == (None if spec == "2.3" else "ClientDisconnect")
    [record] = harness.records()
    assert (record.status, record.completed, record.error_type) == (200, False, expected)
    [span] = [s for s in harness.finished_spans() if s.kind is SpanKind.SERVER]
    assert span.attributes is not None
    assert span.attributes["error.type"] == expected
    assert span.attributes["http.response.status_code"] == 200
    if spec == "2.3":
        assert span.status.status_code is StatusCode.UNSET, "no exception, no server error"
    [point] = harness.metric_points("http.server.request.duration")
    assert point.attributes["error.type"] == expected


async def test_app_exception_is_recorded_as_500_and_reraised_unchanged(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    transport = httpx.ASGITransport(app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        with pytest.raises(KeyError) as caught:
            await c.get("/boom")
    assert caught.value.args == ("missing",)
    [record] = harness.records()
    assert record.status == 500
    assert record.error_type == "KeyError"
    assert record.exception is caught.value
    [span] = harness.finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "KeyError"
    assert [event.name for event in span.events] == ["exception"]
    [point] = harness.metric_points("http.server.request.duration")
    assert point.attributes["error.type"] == "KeyError"
    assert point.attributes["http.response.status_code"] == 500


async def test_exception_after_the_response_started_keeps_the_status_sent(harness: Harness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("late")

    wrapped = harness.asgi(app)
    transport = httpx.ASGITransport(wrapped, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await c.get("/")
    [record] = harness.records()
    assert (record.status, record.error_type, record.completed) == (201, "RuntimeError", False)
    assert record.response_bytes == len(b"partial")


async def test_streaming_response_duration_covers_the_whole_body(harness: Harness) -> None:
    async def chunks() -> Any:
        for index in range(3):
            await asyncio.sleep(0.02)
            yield f"chunk{index}".encode()

    async def stream(request: Any) -> StreamingResponse:
        return StreamingResponse(chunks())

    app = harness.asgi(Starlette(routes=[Route("/stream", stream)]))
    async with client(app) as c:
        response = await c.get("/stream")
    assert response.content == b"chunk0chunk1chunk2"
    [record] = harness.records()
    assert record.response_bytes == 18
    assert record.duration_ns >= 60_000_000
    assert record.completed


async def test_background_task_time_is_app_time_not_response_time(harness: Harness) -> None:
    from starlette.background import BackgroundTask

    async def slow_task() -> None:
        with otel_bridge.timer(group="background"):
            await asyncio.sleep(0.05)

    async def endpoint(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok", background=BackgroundTask(slow_task))

    app = harness.asgi(Starlette(routes=[Route("/", endpoint)]))
    async with client(app) as c:
        await c.get("/")
    [record] = harness.records()
    assert record.duration_ns < 50_000_000 <= record.app_duration_ns
    assert [dict(t.tags) for t in record.timers] == [{"group": "background"}]


async def test_head_request_is_recorded_without_body_bytes(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    async with client(app) as c:
        response = await c.head("/users/1")
    assert response.status_code == 200 and response.content == b""
    [record] = harness.records()
    assert (record.method, record.status, record.response_bytes) == ("HEAD", 200, 0)


async def test_unknown_method_is_recorded_as_other(harness: Harness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = harness.asgi(app)
    async with client(wrapped) as c:
        await c.request("PURGE", "/cache")
    [record] = harness.records()
    assert (record.method, record.method_original) == ("_OTHER", "PURGE")
    [span] = harness.finished_spans()
    assert span.name == "HTTP"


async def test_lifespan_passes_through_and_a_websocket_is_recorded_as_it_is(
    harness: Harness,
) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        else:
            await send({"type": "websocket.close", "code": 1000})

    wrapped = harness.asgi(app)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await wrapped({"type": "websocket", "path": "/ws", "headers": []}, receive, send)
    # The lifespan is not recorded; the WebSocket connection is (otel_bridge._websocket),
    # its messages untouched: closed before it was accepted, a refused handshake.
    [record] = harness.records()
    await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert seen == ["websocket", "lifespan"]
    assert [m["type"] for m in sent] == [
        "websocket.close",
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert (record.interface, record.path, record.status) == ("websocket", "/ws", 403)
    assert dict(record.fields) == {
        ".websocket.messages_received": 0,
        ".websocket.messages_sent": 0,
    }
    [span] = harness.finished_spans()
    assert span.name == "GET"
    assert harness.metric_points("http.server.request.duration") == []


async def test_lifespan_shutdown_exports_requests_still_queued(harness: Harness) -> None:
    release = threading.Event()

    class Slow(RecordExporter):
        name = "slow"

        def __init__(self) -> None:
            self.got: list[str] = []

        def export(self, records: Any) -> None:
            release.wait(5)
            self.got.extend(r.path for r in records)

    slow = Slow()
    wrapped = harness.asgi(starlette_app(), record_exporters=[slow])
    async with client(wrapped) as c:
        for index in range(5):
            await c.get(f"/users/{index}")
    assert slow.got == []
    release.set()
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Any:
        return next(messages)

    async def send(message: Any) -> None:
        pass

    await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert slow.got == [f"/users/{index}" for index in range(5)]


async def test_client_disconnect_propagates_and_is_recorded(harness: Harness) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        await send({"type": "http.response.body", "body": b"y" * 10, "more_body": True})

    wrapped = harness.asgi(app)
    sends = 0

    async def send(message: Any) -> None:
        nonlocal sends
        sends += 1
        if sends == 3:
            raise OSError("client went away")

    async def receive() -> Any:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "GET", "path": "/dl", "headers": [], "query_string": b""}
    with pytest.raises(OSError, match="client went away"):
        await wrapped(scope, receive, send)
    [record] = harness.records()
    assert (record.status, record.completed, record.error_type) == (200, False, "OSError")
    assert record.response_bytes == 10


async def test_odd_scopes_pass_through_and_are_recorded_safely(harness: Harness) -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        received.append(dict(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = harness.asgi(app)

    async def send(message: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    huge = b"v" * 200_000
    scopes: list[dict[str, Any]] = [
        # A path holding undecodable bytes (as a server may pass them through).
        {"type": "http", "method": "GET", "path": "/caf\udce9/%FF", "headers": []},
        # Almost nothing at all.
        {"type": "http"},
        {
            "type": "http",
            "method": "GET",
            "path": "/h",
            "headers": [(b"x-huge", huge), (b"host", b"[::1]:9000"), (b"x-\xff", b"\x00\xff")],
        },
    ]
    for scope in scopes:
        await wrapped(dict(scope), receive, send)
    assert [r.get("path") for r in received] == ["/caf\udce9/%FF", None, "/h"]
    records = harness.records()
    assert [r.path for r in records] == ["/caf\ufffd/%FF", "", "/h"]
    assert records[2].headers["x-huge"] == huge.decode()
    assert (records[2].server_address, records[2].server_port) == ("::1", 9000)
    for record in records:
        record.path.encode("utf-8")  # encodable: the views can always serialise it


async def test_concurrent_requests_keep_their_own_timers(harness: Harness) -> None:
    async def endpoint(request: Any) -> PlainTextResponse:
        n = int(request.path_params["n"])
        for index in range(n % 4):
            with otel_bridge.timer(request=str(n), index=index):
                await asyncio.sleep(0.001 * (n % 3))
        return PlainTextResponse(str(n))

    app = harness.asgi(Starlette(routes=[Route("/n/{n}", endpoint)]))
    async with client(app) as c:
        responses = await asyncio.gather(*(c.get(f"/n/{n}") for n in range(60)))
    assert [r.text for r in responses] == [str(n) for n in range(60)]
    records = harness.records()
    assert len(records) == 60
    for record in records:
        n = int(record.path.rsplit("/", 1)[1])
        tags = [dict(t.tags) for t in record.timers]
        assert tags == [{"request": str(n), "index": i} for i in range(n % 4)]


async def test_excluded_urls_are_passed_through_without_span_or_record(harness: Harness) -> None:
    app = harness.asgi(starlette_app(), excluded_urls="^/users/1$,healthz")
    async with client(app) as c:
        assert (await c.get("/users/1")).text == "user 1"
        assert (await c.get("/users/2")).text == "user 2"
    assert [r.path for r in harness.records()] == ["/users/2"]


async def test_incoming_trace_context_is_continued(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    async with client(app) as c:
        await c.get("/users/1", headers=headers)
    [record] = harness.records()
    assert f"{record.trace_id:032x}" == trace_id
    server = next(s for s in harness.finished_spans() if s.kind is SpanKind.SERVER)
    assert server.parent is not None and server.parent.span_id == 0x00F067AA0BA902B7
    assert server.parent.is_remote


async def test_dropped_traces_still_yield_complete_records() -> None:
    harness = make_harness(sampler=ALWAYS_OFF)
    app = harness.asgi(starlette_app())
    async with client(app) as c:
        await c.get("/users/9")
    [record] = harness.records()
    assert not record.sampled
    assert [dict(t.tags)["op"] for t in record.timers] == ["select"]
    assert record.route == "/users/{uid}"
    assert harness.spans.get_finished_spans() == (), "the sampled-only exporter saw nothing"
    app.bridge.shutdown()


async def test_httpx_child_spans_become_http_timers(harness: Harness) -> None:
    async def backend(request: Any) -> PlainTextResponse:
        return PlainTextResponse("from backend")

    backend_app = Starlette(routes=[Route("/b", backend)])
    outgoing = httpx.AsyncClient(transport=httpx.ASGITransport(backend_app), base_url="http://svc")
    HTTPXClientInstrumentor().instrument_client(outgoing, tracer_provider=harness.tracer_provider)

    async def frontend(request: Any) -> PlainTextResponse:
        response = await outgoing.get("/b")
        return PlainTextResponse(response.text)

    app = harness.asgi(Starlette(routes=[Route("/f", frontend)]))
    async with client(app) as c:
        assert (await c.get("/f")).text == "from backend"
    await outgoing.aclose()
    [record] = harness.records()
    [timer] = record.timers
    assert timer.kind == "http"
    assert dict(timer.tags) == {"group": "http", "op": "GET", "server": "svc"}


async def test_body_size_metrics_are_opt_in(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    async with client(app) as c:
        await c.post("/users/1", content=b"12345")
    assert harness.metric_points("http.server.request.body.size") == []
    assert harness.metric_points("http.server.response.body.size") == []
    assert len(harness.metric_points("http.server.request.duration")) == 1


async def test_metrics_follow_stable_semconv(harness: Harness) -> None:
    settings = otel_bridge.Settings(exporters=()).replace(body_size_metrics=True)
    app = harness.asgi(starlette_app(), settings=settings)
    async with client(app) as c:
        await c.get("/users/1")
        await c.get("/users/2")
        await c.post("/nowhere", content=b"12345")
    points = {
        (p.attributes.get("http.route"), p.attributes["http.response.status_code"]): p
        for p in harness.metric_points("http.server.request.duration")
    }
    assert set(points) == {("/users/{uid}", 200), (None, 404)}
    ok = points[("/users/{uid}", 200)]
    assert ok.count == 2
    assert dict(ok.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "http.route": "/users/{uid}",
    }
    assert 0 < ok.sum < 1
    assert ok.explicit_bounds[:3] == (0.005, 0.01, 0.025)
    [request_size] = harness.metric_points("http.server.request.body.size")
    assert request_size.sum == 5
    [active_get, active_post] = sorted(
        harness.metric_points("http.server.active_requests"),
        key=lambda p: p.attributes["http.request.method"],
    )
    assert (active_get.value, active_post.value) == (0, 0)


async def test_active_requests_counts_requests_in_flight(harness: Harness) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def wait(request: Any) -> PlainTextResponse:
        entered.set()
        await release.wait()
        return PlainTextResponse("done")

    app = harness.asgi(Starlette(routes=[Route("/wait", wait)]))
    async with client(app) as c:
        task = asyncio.create_task(c.get("/wait"))
        await entered.wait()
        [point] = harness.metric_points("http.server.active_requests")
        assert point.value == 1
        release.set()
        await task
    [point] = harness.metric_points("http.server.active_requests")
    assert point.value == 0


async def test_a_failing_exporter_never_reaches_the_app_and_is_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingExporter()
    app = harness.asgi(starlette_app(), record_exporters=[failing, harness.collector])
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        async with client(app) as c:
            for index in range(20):
                assert (await c.get(f"/users/{index}")).status_code == 200
        records = harness.records()
    assert len(records) == 20, "exporters after the failing one still get every record"
    assert failing.calls == 20
    assert app.bridge.health.errors["exporter.failing"] >= 1
    assert len([r for r in caplog.records if "exporter.failing" in r.getMessage()]) == 1


async def test_a_stuck_view_drops_and_counts_its_own_records_only(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A wait for room longer than a loaded machine's noise: one wait is a second, one per
    # record (each request's record a batch of its own here) would be eight.
    monkeypatch.setattr(otel_bridge._lanes, "BACKPRESSURE_S", 1.0)
    gate = threading.Event()

    class Blocking(RecordExporter):
        name = "blocking"

        def export(self, records: Any) -> None:
            gate.wait(10)

    settings = otel_bridge.Settings(exporters=()).replace(queue_size=2)
    app = harness.asgi(
        starlette_app(), settings=settings, record_exporters=[Blocking(), harness.collector]
    )
    async with client(app) as c:
        started = time.monotonic()
        for index in range(10):
            assert (await c.get(f"/users/{index}")).status_code == 200
            for _ in range(500):  # the other view has it: the next record is a batch apart
                if len(harness.collector.records) > index:
                    break
                await asyncio.sleep(0.01)
        # A stuck view costs the other views at most one wait for room, not one per batch.
        assert time.monotonic() - started < 4
        # Stuck, the view is behind: a flush says it could not finish.
        assert app.bridge.force_flush(200) is False
        assert app.bridge.lanes() == {"blocking": {"queued": 2, "behind": True}}
    assert len(harness.collector.records) == 10, "the other views get every record"
    gate.set()
    assert app.bridge.force_flush(5_000)
    dropped = app.bridge.health.dropped["view.blocking"]
    # One batch in the stuck export, two records queued: the rest dropped, and counted.
    assert 6 <= dropped <= 8
    assert app.bridge.lanes() == {"blocking": {"queued": 0, "behind": False}}
    server = [s for s in harness.finished_spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 10, "every span ended"
    logged = [r.getMessage() for r in caplog.records if "view blocking" in r.getMessage()]
    assert len(logged) == 2, logged  # once when it fell behind, once when it caught up
    assert "not keeping up" in logged[0] and "keeping up again" in logged[1]


def two_slot_queue_app(harness: Harness, exporter: RecordExporter) -> Any:
    """The test app with a queue of two records, `exporter` first, then the collector."""
    settings = otel_bridge.Settings(exporters=()).replace(queue_size=2)
    exporters = [exporter, harness.collector]
    return harness.asgi(starlette_app(), settings=settings, record_exporters=exporters)


async def test_a_full_queue_waits_for_a_busy_exporter_instead_of_dropping(
    harness: Harness,
) -> None:
    # Requests that keep the CPU busy must not starve the export thread into dropping records:
    # a full queue makes the request wait for room while the exporter makes progress.
    class Slow(RecordExporter):
        name = "slow"

        def export(self, records: Any) -> None:
            time.sleep(0.002 * len(records))

    app = two_slot_queue_app(harness, Slow())
    async with client(app) as c:
        for index in range(40):
            assert (await c.get(f"/users/{index}")).status_code == 200
    assert app.bridge.force_flush(5_000)
    assert app.bridge.health.dropped == {}
    assert len(harness.records()) == 40


async def test_one_slow_batch_costs_its_own_view_only_and_only_while_it_lasts(
    harness: Harness,
) -> None:
    # A batch longer than a view's queue can cover (a full collection, a slow disk): that view
    # drops what arrives while it runs, and takes records again as soon as it finished the
    # batch. The other views miss nothing.
    calls = [0]

    class OnceSlow(RecordExporter):
        name = "once_slow"

        def __init__(self) -> None:
            self.paths: list[str] = []

        def export(self, records: Any) -> None:
            calls[0] += 1
            if calls[0] == 1:
                time.sleep(0.3)
            self.paths.extend(record.path for record in records)

    slow = OnceSlow()
    app = two_slot_queue_app(harness, slow)
    async with client(app) as c:
        for index in range(200):
            assert (await c.get(f"/users/{index}")).status_code == 200
            await asyncio.sleep(0.005)  # ~1.3 s in all
    assert app.bridge.force_flush(5_000)
    dropped = app.bridge.health.dropped
    assert set(dropped) == {"view.once_slow"}, dropped
    assert 1 <= dropped["view.once_slow"] <= 100, dropped
    assert len(slow.paths) == 200 - dropped["view.once_slow"]
    # The slow batch ends ~0.3 s in: the view has every request after the first ~half.
    assert [f"/users/{index}" for index in range(120, 200)] == slow.paths[-80:]
    assert len(harness.records()) == 200, "the other views miss nothing"


async def test_sdk_disabled_returns_the_app_unchanged(harness: Harness) -> None:
    app = starlette_app()
    settings = otel_bridge.Settings().replace(sdk_disabled=True)
    assert otel_bridge.instrument(app, settings=settings) is app


async def test_instances_hold_no_per_request_state(harness: Harness) -> None:
    app = harness.asgi(starlette_app())
    before = dict(vars(app))
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        await c.get("/users/1")
        await c.get("/boom")
    assert vars(app) == before


async def test_tasks_outliving_the_request_leave_it_and_leak_nothing(harness: Harness) -> None:
    done = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def later() -> None:
        await asyncio.sleep(0.01)
        with otel_bridge.timer(group="late"):
            pass
        done.set()

    async def endpoint(request: Any) -> PlainTextResponse:
        tasks.append(asyncio.get_running_loop().create_task(later()))
        return PlainTextResponse("ok")

    app = harness.asgi(Starlette(routes=[Route("/", endpoint)]))
    async with client(app) as c:
        await c.get("/")
    await done.wait()
    [record] = harness.records()
    assert record.timers == ()
    assert app.bridge.processor._live == {}
    assert "late" in [s.name for s in harness.finished_spans()], "still a span of its own"


async def test_an_app_refusing_lifespan_still_gets_the_flush_at_shutdown(harness: Harness) -> None:
    # Django's ASGI handler raises for any scope but HTTP: the server's SIGTERM then ran no
    # lifespan shutdown, and the last spans and records were lost.
    ended: list[str] = []

    async def django_like(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = harness.asgi(django_like)
    wrapped.bridge.exporters[0].shutdown = lambda: ended.append("shutdown")
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ended == ["shutdown"], "the bridge shut down: everything finished was exported"


async def test_an_apps_own_startup_failure_still_reaches_the_server(harness: Harness) -> None:
    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("no database")

    wrapped = harness.asgi(failing)

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError(message)

    with pytest.raises(RuntimeError, match="no database"):
        await wrapped({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
