"""Other instrumentations' spans in a request (otel_bridge._foreign_spans): never the SDK's
while nothing needs it, and still what every processor, exporter and view would have seen
from the SDK's: compared, field by field, with a provider where a processor watches spans
start (so the SDK makes them)."""

from __future__ import annotations

import asyncio
import contextvars
import http.server
import logging
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer, TracerProvider
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

import otel_bridge
from otel_bridge import _timer_spans
from otel_bridge._foreign_spans import ForeignSpan
from otel_bridge._timer_spans import TimerSpan
from tests.conftest import Harness, StartWatcher, make_harness
from tests.test_server_span import PARENT, views_only
from tests.test_timer_spans import request, shape, timer_spans_made

START = 1_700_000_000_000_000_000


def other() -> trace.Tracer:
    return trace.get_tracer("app.client", "2.0")


async def app(scope: Any, receive: Any, send: Any) -> None:
    tracer = other()
    # A query's span: attributes at the start, more after, the status it ends with.
    with tracer.start_as_current_span(
        "SELECT users",
        kind=SpanKind.CLIENT,
        attributes={"db.system": "sqlite", "db.statement": "SELECT * FROM users", "n": 1},
    ) as span:
        span.set_attribute("db.rows", 3)
        span.set_attributes({"a.flag": True, "a.ratio": 0.5})
        span.add_event("fetched", {"rows": 3})
        span.set_status(Status(StatusCode.OK))
        span.set_status(StatusCode.ERROR, "ignored after OK, as the SDK does")
    # An HTTP client call that fails: the exception recorded, the status set, by use_span.
    try:
        with tracer.start_as_current_span(
            "GET", kind=SpanKind.CLIENT, attributes={"http.request.method": "GET"}
        ) as span:
            span.update_name("GET api")
            span.set_attribute("server.address", "api.invalid")
            raise ConnectionError("refused")
    except ConnectionError:
        pass
    # start_span used as a context manager (the span's own __exit__), failing, inside a timer.
    with otel_bridge.timer(group="cache"):
        try:
            with tracer.start_span("cache get", record_exception=False) as span:
                raise KeyError("k")
        except KeyError:
            pass
        try:
            with tracer.start_span("cache set"):
                raise TimeoutError("slow")
        except TimeoutError:
            pass
    # A timer inside another instrumentation's span; times given; the parent from a context.
    outer = tracer.start_span("batch", start_time=START)
    with trace.use_span(outer):
        with otel_bridge.timer(group="inner"):
            pass
        given = trace.set_span_in_context(outer)
    detached = tracer.start_span("detached child", context=given, start_time=START + 5)
    detached.end(end_time=START + 9)
    outer.end(end_time=START + 10)
    # What the SDK makes itself: links, a value it converts (a list), a span in a thread.
    with tracer.start_as_current_span("linked", links=[Link(outer.get_span_context())]):
        pass
    with tracer.start_as_current_span("listed", attributes={"tags": ["a", "b"]}):
        pass

    # start_as_current_span as a decorator (a span a call), with an exception that is not an
    # error (the API's use_span decides), and left open at the block's end.
    def work() -> None:
        pass

    decorated = tracer.start_as_current_span("decorated")(work)
    decorated()
    decorated()
    try:
        with tracer.start_as_current_span("stopped", set_status_on_exception=False):
            raise Stop
    except Stop:
        pass
    with tracer.start_as_current_span("kept open", end_on_exit=False) as span:
        pass
    span.end()
    copied = contextvars.copy_context()
    worker = threading.Thread(target=copied.run, args=(threaded,))
    worker.start()
    worker.join()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class Stop(BaseException):
    """Not an Exception: what the API records of it depends on its version."""


def by_name_order(shaped: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`shape`'s spans by name (links by their count: a Link has no equality)."""
    for item in shaped:
        item["links"] = len(item["links"])
    return sorted(shaped, key=lambda item: (item["name"], str(item["attributes"])))


def timers(record: Any) -> list[tuple[Any, ...]]:
    return sorted(((t.name, t.kind, t.tags, t.error_type) for t in record.timers), key=repr)


def threaded() -> None:
    with other().start_as_current_span("in a thread", kind=SpanKind.CLIENT):
        pass


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`trace.get_tracer` on a harness's provider (each app's other tracer is its own)."""

    def use(h: Harness) -> None:
        monkeypatch.setattr(trace, "get_tracer", h.tracer_provider.get_tracer)

    yield use


def test_another_instrumentations_span_is_the_sdk_span_without_being_one(
    pair: tuple[Harness, Harness, StartWatcher],
    monkeypatch: pytest.MonkeyPatch,
    routed: Any,
) -> None:
    deferred, sdk, watcher = pair
    made = timer_spans_made(monkeypatch)
    for h in (deferred, sdk):
        routed(h)
        request(h.asgi(app), {"traceparent": PARENT})
    ours, theirs = deferred.finished_spans(), sdk.finished_spans()
    # Built at the end: every span but those the SDK had to make (links, a list value).
    light = {"SELECT users", "GET", "cache get", "cache set", "batch", "detached child"}
    light |= {"decorated", "stopped", "kept open"}
    assert light <= set(made) and not {"linked", "listed"} & set(made)
    assert {"SELECT users", "linked", "listed"} <= set(watcher.started)
    assert len(ours) == len(theirs) == 16
    # The same spans; delivered in another order (the SDK's at their end, these at the
    # request's), which no processor or exporter relies on.
    assert by_name_order(shape(ours)) == by_name_order(shape(theirs))
    # What they hold is right, not only equal.
    assert [span.name for span in ours].count("decorated") == 2
    by_name = {span.name: span for span in ours}
    query = by_name["SELECT users"]
    assert dict(query.attributes or {}) == {
        "db.system": "sqlite",
        "db.statement": "SELECT * FROM users",
        "n": 1,
        "db.rows": 3,
        "a.flag": True,
        "a.ratio": 0.5,
    }
    assert query.status.status_code is StatusCode.OK
    assert [event.name for event in query.events] == ["fetched"]
    failed = by_name["GET api"]
    assert failed.status.description == "ConnectionError: refused"
    assert [event.name for event in failed.events] == ["exception"]
    cache = by_name["cache get"]
    assert cache.status.description == "KeyError: 'k'" and not cache.events  # not recorded
    [escaped] = by_name["cache set"].events
    assert escaped.name == "exception" and (escaped.attributes or {})["exception.escaped"] == "True"
    assert by_name["batch"].start_time == START and by_name["batch"].end_time == START + 10
    assert by_name["detached child"].parent.span_id == by_name["batch"].context.span_id  # type: ignore[union-attr]
    inner = next(s for s in ours if (s.attributes or {}).get("group") == "inner")
    assert inner.parent.span_id == by_name["batch"].context.span_id  # type: ignore[union-attr]
    assert by_name["listed"].attributes["tags"] == ("a", "b")  # type: ignore[index]
    scope = by_name["in a thread"].instrumentation_scope
    assert scope is not None and (scope.name, scope.version) == ("app.client", "2.0")
    # The views: the same timers, and the same database figures, either way.
    [mine], [yours] = deferred.records(), sdk.records()
    assert timers(mine) == timers(yours) and len(mine.timers) == 15
    for field in (".db.query_count", ".db.duplicate_queries"):
        assert mine.fields[field] == yours.fields[field]
    assert mine.fields[".db.query_count"] == 1 and mine.fields[".db.query_ms"] != 0
    assert next(t for t in mine.timers if t.name == "GET api").error_type == "error"


def test_with_nothing_exported_no_span_is_built_and_the_views_see_the_same(
    routed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, unexported = make_harness(), views_only()
    built: list[str] = []  # the spans made for processors, by name
    for made in ("ReadableSpan", "_ReplayedSpan"):

        class Counting(getattr(_timer_spans, made)):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                built.append(kwargs["name"])
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(_timer_spans, made, Counting)
    try:
        routed(unexported)
        request(unexported.asgi(app))
        unexported.apps[0].bridge.force_flush()  # the export thread has handled the request
        assert built == [], "no processor to export to: none is made"
        routed(exported)
        request(exported.asgi(app))
        exported.apps[0].bridge.force_flush()
        assert {"SELECT users", "GET", "batch", "in a thread"} <= set(built)
        assert timers(unexported.records()[0]) == timers(exported.records()[0])
    finally:
        for h in (exported, unexported):
            for wrapped in h.apps:
                wrapped.bridge.shutdown()


async def late_values(scope: Any, receive: Any, send: Any) -> None:
    # A query's span whose attributes all come after its start (as dbapi's and SQLAlchemy's
    # instrumentations set them), some of them values the SDK cleans: a list it makes a
    # tuple, an empty key it drops, bytes (kept or decoded, by the SDK's version).
    with other().start_as_current_span("SELECT", kind=SpanKind.CLIENT) as span:
        span.set_attribute("db.system", b"postgresql")
        span.set_attributes({"db.statement": "SELECT 1", "server.address": "db.invalid"})
        span.set_attribute("db.rows", [1, 2])
        span.set_attribute("", "dropped")
    with other().start_as_current_span("SELECT", kind=SpanKind.CLIENT) as span:
        span.set_attributes({"db.system": "sqlite", "db.statement": "SELECT 2"})
        span.set_attribute("server.address", "other.invalid")
    with other().start_as_current_span("SELECT", kind=SpanKind.CLIENT) as span:
        span.set_attributes({"db.system": "sqlite", "db.statement": "SELECT 3"})
        span.set_attribute("server.address", ["listed.invalid"])  # a tag of the tuple's text
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_attributes_set_after_the_start_are_cleaned_as_the_sdk_cleans_them(
    pair: tuple[Harness, Harness, StartWatcher], routed: Any
) -> None:
    deferred, sdk, _ = pair
    for h in (deferred, sdk):
        routed(h)
        request(h.asgi(app=late_values))
    [mine], [yours] = deferred.records(), sdk.records()
    assert timers(mine) == timers(yours)
    servers = sorted(dict(t.tags)["server"] for t in mine.timers)
    assert servers == ["('listed.invalid',)", "db.invalid", "other.invalid"]
    assert mine.fields[".db.query_count"] == yours.fields[".db.query_count"] == 3
    # Both exported spans, as the SDK ends its own: the list a tuple, the empty key dropped.
    first = [
        dict(span.attributes or {})
        for h in (deferred, sdk)
        for span in h.finished_spans()
        if (span.attributes or {}).get("db.statement") == "SELECT 1"
    ]
    assert first[0] == first[1] and first[0]["db.rows"] == (1, 2) and "" not in first[0]


def test_outside_a_request_or_on_another_provider_it_is_the_sdk_span(
    harness: Harness,
) -> None:
    seen: list[Any] = []
    elsewhere = TracerProvider()

    async def mixed(scope: Any, receive: Any, send: Any) -> None:
        seen.append(harness.tracer_provider.get_tracer("mine").start_span("a"))
        seen.append(elsewhere.get_tracer("theirs").start_span("b"))
        for span in seen:
            span.end()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    request(harness.asgi(mixed))
    outside = harness.tracer_provider.get_tracer("mine").start_span("c")
    outside.end()
    assert [type(span) for span in (*seen, outside)] == [ForeignSpan, type(seen[1]), type(outside)]
    assert isinstance(seen[1], SdkSpan) and isinstance(outside, SdkSpan)
    assert Tracer.start_span.otel_bridge_wraps is not None  # type: ignore[attr-defined]
    # The other provider's span is not a timer of the request: no processor of ours saw it.
    assert [t.name for t in harness.records()[0].timers] == ["a"]


def test_a_span_outliving_its_request_is_exported_and_counted(harness: Harness) -> None:
    kept: list[Any] = []

    async def leaves_open(scope: Any, receive: Any, send: Any) -> None:
        kept.append(harness.tracer_provider.get_tracer("bg").start_span("late", start_time=1))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = harness.asgi(leaves_open)
    request(wrapped)
    [span] = kept
    assert type(span) is ForeignSpan and span.is_recording()
    span.end()
    assert not span.is_recording()
    wrapped.bridge.force_flush()
    assert sorted(s.name for s in harness.finished_spans()) == ["GET", "late"]
    assert harness.records()[0].timers == ()
    assert wrapped.bridge.health.dropped.get("timer_after_request") == 1


def test_ending_twice_warns_as_the_sdk_and_changes_after_the_end_are_ignored(
    pair: tuple[Harness, Harness, StartWatcher], caplog: pytest.LogCaptureFixture
) -> None:
    deferred, sdk, _ = pair
    made: list[Any] = []

    def twice(h: Harness) -> Any:
        async def inner(scope: Any, receive: Any, send: Any) -> None:
            span: Any = h.tracer_provider.get_tracer("app.x").start_span("once")
            span.end()
            span.set_attribute("late", 1)
            made.append((type(span) is ForeignSpan, span.is_recording()))
            span.end()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        return inner

    for h in (deferred, sdk):
        with caplog.at_level(logging.WARNING, logger="opentelemetry.sdk.trace"):
            caplog.clear()
            request(h.asgi(twice(h)))
            ended = [r for r in caplog.records if "Calling end() on an ended span" in r.message]
            assert len(ended) == 1
    assert made == [(True, False), (False, False)]
    ours = next(s for s in deferred.finished_spans() if s.name == "once")
    theirs = next(s for s in sdk.finished_spans() if s.name == "once")
    assert dict(ours.attributes or {}) == dict(theirs.attributes or {}) == {}


def test_a_running_span_is_named_in_a_timeout_event_and_nests_timers(
    harness: Harness,
) -> None:
    seen: list[Any] = []

    async def nested(scope: Any, receive: Any, send: Any) -> None:
        tracer = harness.tracer_provider.get_tracer("app.y")
        with tracer.start_as_current_span("outer") as span:
            builder = otel_bridge.builder.current.get()
            assert builder is not None
            seen.append([s.name for s in (builder.open_spans or {}).values()])
            with otel_bridge.timer(group="in"):
                seen.append(trace.get_current_span())
            seen.append(trace.get_current_span() is span)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    request(harness.asgi(nested))
    open_names, timer_span, back = seen
    assert open_names == ["outer"]
    assert type(timer_span) is TimerSpan and back
    assert [t.name for t in harness.records()[0].timers] == ["in", "outer"]


def test_a_disabled_tracer_gets_the_sdks_non_recording_span(harness: Harness) -> None:
    configure = getattr(harness.tracer_provider, "_set_tracer_configurator", None)
    if configure is None:
        pytest.skip("this SDK has no tracer configurator")
    from opentelemetry.sdk.trace import _disable_tracer_configurator

    seen: list[Any] = []

    async def off(scope: Any, receive: Any, send: Any) -> None:
        seen.append(harness.tracer_provider.get_tracer("app.off").start_span("x"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = harness.asgi(off)
    request(wrapped)  # binds; then every tracer of the provider is turned off
    configure(tracer_configurator=_disable_tracer_configurator)
    request(wrapped)
    assert type(seen[0]) is ForeignSpan
    assert type(seen[1]) is trace.NonRecordingSpan


@pytest.fixture
def instrumented(pair: tuple[Harness, Harness, StartWatcher]) -> Iterator[Any]:
    """Real instrumentations (sqlite3's, httpx's) on one harness's provider at a time."""
    # Imported here: they need a newer SDK than the oldest the core runs on (scripts/test).
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    current: list[Any] = []

    def on(h: Harness) -> None:
        off()
        SQLite3Instrumentor().instrument(tracer_provider=h.tracer_provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=h.tracer_provider)
        current.append(h)

    def off() -> None:
        if current:
            SQLite3Instrumentor().uninstrument()
            HTTPXClientInstrumentor().uninstrument()
            current.clear()

    yield on
    off()


class Backend(http.server.BaseHTTPRequestHandler):
    # The trace context each call carried (httpx's instrumentation injects it).
    received: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.received.append(self.headers.get("traceparent", ""))
        self.send_response(404 if self.path == "/missing" else 200)
        self.send_header("content-length", "1")
        self.end_headers()
        self.wfile.write(b"x")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    """A real HTTP server on loopback for the app to call."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_real_instrumentations_spans_are_the_sdks(
    pair: tuple[Harness, Harness, StartWatcher], instrumented: Any, backend: str
) -> None:
    deferred, sdk, _ = pair

    async def shop(scope: Any, receive: Any, send: Any) -> None:
        connection = sqlite3.connect(":memory:")
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE t (n INTEGER)")
        cursor.execute("INSERT INTO t VALUES (?)", (1,))
        cursor.execute("SELECT n FROM t")
        cursor.fetchall()
        try:
            cursor.execute("SELECT nope FROM t")
        except sqlite3.OperationalError:
            pass
        connection.close()
        async with httpx.AsyncClient() as client:
            await client.get(f"{backend}/items")
            await client.get(f"{backend}/missing")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    Backend.received.clear()
    for h in (deferred, sdk):
        instrumented(h)
        request(h.asgi(shop), {"traceparent": PARENT})
    ours, theirs = deferred.finished_spans(), sdk.finished_spans()
    assert len(ours) == len(theirs) == 7
    # The calls carried each client span's own id as the parent, as with the SDK's spans.
    calls = sorted(
        (s for s in ours if s.kind is SpanKind.CLIENT and s.name.startswith("GET")),
        key=lambda span: span.start_time or 0,
    )
    assert Backend.received[:2] == [
        f"00-{PARENT[3:35]}-{span.context.span_id:016x}-01" for span in calls
    ]
    assert by_name_order(shape(ours)) == by_name_order(shape(theirs))
    assert timers(deferred.records()[0]) == timers(sdk.records()[0])
    kinds = sorted(t.kind for t in deferred.records()[0].timers)
    assert kinds == ["db", "db", "db", "db", "http", "http"]
    failed = [s for s in ours if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 2  # the bad query, the 404


def test_no_sdk_span_is_made_while_the_request_runs() -> None:
    """What it saves (benchmarks.timers measures how much): the SDK's span constructor never
    runs for them; the exported spans are `ReadableSpan`s made on the export thread."""
    h = make_harness()
    calls: list[str] = []
    original = SdkSpan.__init__

    def counting(self: SdkSpan, *args: Any, **kwargs: Any) -> None:
        calls.append(kwargs.get("name", args[0] if args else ""))
        original(self, *args, **kwargs)

    async def many(scope: Any, receive: Any, send: Any) -> None:
        tracer = h.tracer_provider.get_tracer("app.z")
        for _ in range(5):
            with tracer.start_as_current_span("q", kind=SpanKind.CLIENT):
                await asyncio.sleep(0)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    SdkSpan.__init__ = counting  # type: ignore[method-assign]
    try:
        wrapped = h.asgi(many)
        request(wrapped)
        wrapped.bridge.force_flush()
    finally:
        SdkSpan.__init__ = original  # type: ignore[method-assign]
        wrapped.bridge.shutdown()
    assert "q" not in calls  # none while the request ran (the export builds ReadableSpans)
    assert [s.name for s in h.finished_spans()].count("q") == 5


def test_a_failure_of_its_own_never_reaches_the_instrumentation(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    async def calls(scope: Any, receive: Any, send: Any) -> None:
        tracer = harness.tracer_provider.get_tracer("app.w")
        with tracer.start_as_current_span("q", kind=SpanKind.CLIENT) as span:
            seen.append(span)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug of otel_bridge's")

    wrapped = harness.asgi(calls)
    request(wrapped)  # binds, and the light path works
    monkeypatch.setattr("otel_bridge._foreign_spans.start_timer", broken)
    request(wrapped)  # starting fails: the SDK's span instead
    monkeypatch.undo()
    monkeypatch.setattr("otel_bridge._timer_spans.finish_timer", broken)
    request(wrapped)  # ending fails: the span is lost to the views, not the request
    assert [type(span) is ForeignSpan for span in seen] == [True, False, True]
    assert wrapped.bridge.health.errors["bridge.foreign_span"] == 2
    assert [len(record.timers) for record in harness.records()] == [1, 1, 0]
