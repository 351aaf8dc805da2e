"""How the server span is made (otel_bridge._spans): the SDK's own span, one built at the end
for Batch/Simple processors, or none to export (views only). What any processor or exporter
sees must not depend on which."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    SamplingResult,
)
from opentelemetry.trace import Status, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import Harness, StartWatcher, make_harness

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hi")


async def annotated(request: Request) -> PlainTextResponse:
    span = trace.get_current_span()
    assert span.is_recording()
    span.set_attribute("app.user", "ada")
    span.set_attributes({"app.plan": "pro", "app.seats": 3})
    span.add_event("cache.miss", {"key": "u:1"})
    span.set_status(Status(StatusCode.OK))
    request.state.span = span
    return PlainTextResponse("annotated")


async def broken(request: Request) -> PlainTextResponse:
    raise ValueError("no such thing")


async def unavailable(request: Request) -> PlainTextResponse:
    return PlainTextResponse("down", status_code=503)


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/hello/{name}", hello),
            Route("/annotated", annotated),
            Route("/broken", broken),
            Route("/unavailable", unavailable),
        ]
    )


def drive(harness: Harness, app: Any) -> None:
    wrapped = harness.asgi(app)
    transport = httpx.ASGITransport(app=wrapped, raise_app_exceptions=False)

    async def requests() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await c.get("/hello/ada", headers={"traceparent": PARENT, "user-agent": "t/1"})
            await c.get("/annotated")
            await c.get("/broken")
            await c.get("/unavailable")
            await c.get("/nowhere")

    import asyncio

    asyncio.run(requests())


def attrs(span: ReadableSpan) -> Any:
    return span.attributes or {}


def comparable(span: ReadableSpan) -> dict[str, Any]:
    scope = span.instrumentation_scope
    events = [
        (
            event.name,
            {k: v for k, v in (event.attributes or {}).items() if k != "exception.stacktrace"},
        )
        for event in span.events
    ]
    return {
        "name": span.name,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "status": (span.status.status_code, span.status.description),
        "events": events,
        "links": list(span.links),
        "parent": span.parent.span_id if span.parent else None,
        "remote_parent": span.parent.is_remote if span.parent else None,
        "trace_flags": int(span.context.trace_flags),
        "resource": dict(span.resource.attributes),
        "scope": (scope.name, scope.version) if scope else None,
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
    }


def test_the_span_built_at_the_end_is_the_sdk_span(
    pair: tuple[Harness, Harness, StartWatcher],
) -> None:
    deferred, sdk, watcher = pair
    drive(deferred, starlette_app())
    drive(sdk, starlette_app())
    ours = deferred.finished_spans()
    theirs = sdk.finished_spans()
    assert deferred.apps[0].bridge._plan.mode == "deferred"
    assert sdk.apps[0].bridge._plan.mode == "sdk"
    # The SDK's own span ran while the requests did: a processor saw each one start.
    assert watcher.started == ["GET", "GET", "GET", "GET", "GET"]
    assert len(ours) == len(theirs) == 5
    assert [comparable(s) for s in ours] == [comparable(s) for s in theirs]
    by_name = {span.name: span for span in ours}
    # And what that span holds is right, not only equal.
    annotated = by_name["GET /annotated"]
    assert attrs(annotated)["app.user"] == "ada"
    assert attrs(annotated)["app.seats"] == 3
    assert [e.name for e in annotated.events] == ["cache.miss"]
    assert annotated.status.status_code is StatusCode.OK
    broken = by_name["GET /broken"]
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.status.description == "ValueError: no such thing"
    assert (broken.events[0].attributes or {})["exception.type"] == "ValueError"
    assert "no such thing" in str((broken.events[0].attributes or {})["exception.stacktrace"])
    assert by_name["GET /unavailable"].status.status_code is StatusCode.ERROR
    hello = by_name["GET /hello/{name}"]
    assert f"{hello.context.trace_id:032x}" == PARENT[3:35]
    assert f"{hello.parent.span_id:016x}" == PARENT[36:52]  # type: ignore[union-attr]
    # Times: the span ends when the response completed, as the duration metric says.
    records = {r.route: r for r in deferred.records()}
    record = records["/hello/{name}"]
    assert hello.start_time == record.start_time_ns
    assert hello.end_time == record.start_time_ns + record.duration_ns
    assert record.span_id == hello.context.span_id
    assert record.attributes["http.route"] == "/hello/{name}"
    assert dict(records["/annotated"].attributes)["app.plan"] == "pro"


@pytest.mark.parametrize("sampler", [None, ALWAYS_OFF], ids=["views-only", "sampled-out"])
def test_a_record_holds_the_span_attributes_with_or_without_an_sdk_span(sampler: Any) -> None:
    # A record exporter sees the server span's attributes, the app's own included, whether
    # the span was exported (built at the end) or not (nothing exports it, or sampled out).
    exported, unexported = make_harness(), views_only(sampler)
    try:
        drive(exported, starlette_app())
        drive(unexported, starlette_app())
        assert unexported.apps[0].bridge._plan.mode == "unexported"
        ours = {r.path: dict(r.attributes) for r in unexported.records()}
        theirs = {r.path: dict(r.attributes) for r in exported.records()}
        assert ours == theirs
        assert ours["/annotated"]["app.user"] == "ada" and ours["/annotated"]["app.seats"] == 3
        assert ours["/broken"]["error.type"] == "ValueError"
    finally:
        for h in (exported, unexported):
            for app in h.apps:
                app.bridge.shutdown()


def test_changes_after_the_request_are_ignored_as_on_an_ended_span(harness: Harness) -> None:
    kept: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kept.append(trace.get_current_span())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = harness.asgi(app)
    transport = httpx.ASGITransport(app=wrapped)

    async def one() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/x")

    import asyncio

    asyncio.run(one())
    harness.records()
    span = kept[0]
    assert not span.is_recording()
    span.set_attribute("late", True)
    (exported,) = harness.finished_spans()
    assert "late" not in (exported.attributes or {})


def make_wsgi_app(provider: TracerProvider) -> Any:
    tracer = provider.get_tracer("app")

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers: dict[str, str] = {}
        with tracer.start_as_current_span("SELECT users"):
            propagate.inject(headers)
        start_response("200 OK", [("X-Out", headers.get("traceparent", ""))])
        return [b"ok"]

    return wsgi_app


def views_only(sampler: Any = None) -> Harness:
    """A provider with no processor: nothing would read an SDK server span."""
    h = make_harness()
    h.tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    return h


def get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        return client.get(path, **kwargs)


def test_views_only_makes_no_sdk_span_but_keeps_the_trace() -> None:
    h = views_only()
    app = h.wsgi(make_wsgi_app(h.tracer_provider))
    out = get(app, "/users", headers={"traceparent": PARENT}).headers["x-out"]
    bridge = app.bridge
    (record,) = h.records()
    assert bridge._plan.mode == "unexported"
    # The child span is a timer of the request, and the trace context sent on carries the
    # request's trace, sampled, from a span of its own.
    (timer,) = record.timers
    assert timer.name == "SELECT users"
    assert f"{record.trace_id:032x}" == PARENT[3:35]
    assert record.sampled
    assert out.startswith(f"00-{PARENT[3:35]}-")
    assert out.endswith("-01")
    assert record.span_id not in (0, int(PARENT[36:52], 16))
    assert record.attributes["url.path"] == "/users"

    # A processor added later is seen by the next request: its spans are exported, and the
    # child's parent is the server span.
    exporter = InMemorySpanExporter()
    h.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    get(app, "/later")
    (later,) = [r for r in h.records() if r.path == "/later"]
    assert bridge._plan.mode == "deferred"
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert sorted(spans) == ["GET", "SELECT users"]
    assert spans["GET"].context.span_id == later.span_id
    assert spans["SELECT users"].parent.span_id == later.span_id  # type: ignore[union-attr]
    bridge.shutdown()


def test_views_only_follows_the_sampler() -> None:
    h = views_only(ALWAYS_OFF)
    app = h.wsgi(make_wsgi_app(h.tracer_provider))
    out = get(app, "/a").headers["x-out"]
    (record,) = h.records()
    assert app.bridge._plan.mode == "unexported"
    assert record.trace_id != 0
    assert not record.sampled
    assert int(out[-2:], 16) & 1 == 0  # not sampled (0x02 may say the trace id is random)
    # Sampled out, the request and its timer are still recorded.
    assert [t.name for t in record.timers] == ["SELECT users"]
    app.bridge.shutdown()


def test_span_limits_leave_the_span_to_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    h = make_harness()
    app = h.wsgi(make_wsgi_app(h.tracer_provider))
    get(app, "/abcdefgh")
    spans = {s.name: s for s in h.finished_spans()}
    assert app.bridge._plan.mode == "sdk"
    assert attrs(spans["GET"])["url.path"] == "/abc"
    app.bridge.shutdown()


@pytest.mark.parametrize("sampled", [True, False])
def test_the_duration_histogram_links_a_sampled_request_to_its_trace(sampled: bool) -> None:
    # As contrib, which records inside the request: the SDK's default exemplar filter keeps
    # a measurement made with a sampled span in its context.
    h = make_harness(sampler=None if sampled else ALWAYS_OFF)
    app = h.wsgi(make_wsgi_app(h.tracer_provider))
    get(app, "/users")
    (record,) = h.records()
    (point,) = h.metric_points("http.server.request.duration")
    exemplars = list(getattr(point, "exemplars", ()))
    if sampled:
        (exemplar,) = exemplars
        assert (exemplar.trace_id, exemplar.span_id) == (record.trace_id, record.span_id)
        assert exemplar.value == pytest.approx(record.duration_ns / 1e9)
    else:
        assert exemplars == []
    app.bridge.shutdown()


def test_only_the_untouched_default_sampler_goes_unasked() -> None:
    # ParentBased(ALWAYS_ON) answers every root span the same way, so it is not asked; a
    # sampler patched by someone else, or any other sampler, is asked for every request.
    asked: list[str] = []
    default = ParentBased(ALWAYS_ON)
    patched = ParentBased(ALWAYS_ON)

    def drop_all(*args: Any, **kwargs: Any) -> SamplingResult:
        asked.append(args[2])
        return SamplingResult(Decision.DROP)

    patched.should_sample = drop_all  # type: ignore[method-assign]
    for sampler, sampled in ((default, True), (patched, False), (ParentBased(ALWAYS_OFF), False)):
        h = make_harness(sampler=sampler)
        app = h.wsgi(make_wsgi_app(h.tracer_provider))
        out = get(app, "/users").headers["x-out"]
        (record,) = h.records()
        assert app.bridge._plan.mode == "deferred"
        assert record.sampled is sampled
        assert int(out[-2:], 16) & 1 == sampled  # 0x02 may say the trace id is random
        assert [s.name for s in h.finished_spans()] == (["SELECT users", "GET"] if sampled else [])
        app.bridge.shutdown()
    # The patched sampler was asked for the server span first, then for the child.
    assert asked == ["GET", "SELECT users"]
