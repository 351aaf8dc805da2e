"""How a timer's span is made (otel_bridge._timer_spans): built at the end for Batch/Simple
processors, not at all when nothing exports it, the SDK's own otherwise. What any processor,
exporter or view sees must not depend on which."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

import otel_bridge
from otel_bridge import _current_span, _timer_spans, closing
from otel_bridge._timer_spans import TimerSpan
from otel_bridge.record import RequestRecord
from tests.conftest import Harness, StartWatcher, make_harness
from tests.test_server_span import PARENT, comparable, views_only

seen_spans: list[Any] = []
# What the app saw of spans' ends: another tracer's span's end_time inside its block and
# after, then a timer's span's is_recording() after its block.
ends: list[Any] = []


@otel_bridge.timer(group="cache", op="get")
def cached(key: str) -> str:
    seen_spans.append(trace.get_current_span())
    return key.upper()


async def numbers() -> Any:
    for n in range(2):
        with otel_bridge.timer(group="gen", n=n):
            yield n


async def app(scope: Any, receive: Any, send: Any) -> None:
    other = trace.get_tracer("app.db")
    with (
        otel_bridge.timer(group="db", op="select", table=["users", "orgs"], extra={"k": 1}),
        otel_bridge.timer(name="inner", group="db", op="fetch"),
        other.start_as_current_span("SELECT users", kind=trace.SpanKind.CLIENT) as query,
    ):
        ends.append(query.end_time)  # type: ignore[attr-defined]  # the SDK span's property
    ends.append(query.end_time)  # type: ignore[attr-defined]
    with otel_bridge.timer(group="annotated"):
        span = trace.get_current_span()
        span.set_attribute("app.rows", 3)
        span.add_event("cache.miss", {"key": "u:1"})
        span.set_status(Status(StatusCode.OK))
    # Changed after its end: ignored, and logged as the SDK logs it.
    ends.append(span.is_recording())
    span.set_attribute("app.late", 1)
    span.add_event("late")
    span.update_name("late")
    try:
        with otel_bridge.timer(group="failing"):
            raise LookupError("nope")
    except LookupError:
        pass
    cached("a")
    async with otel_bridge.timer(group="async-cm"):
        await asyncio.sleep(0)
    async for _ in numbers():
        pass
    # A thread started by the request, with the request's context copied into it.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(cached, "t"))
    worker.start()
    worker.join()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def request(wrapped: Any, headers: dict[str, str] | None = None) -> None:
    async def one() -> None:
        transport = httpx.ASGITransport(app=wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/x", headers=headers or {})).status_code == 200

    asyncio.run(one())


def shape(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    """Each span as `comparable` has it, its parent named instead of numbered (ids are
    random), in the order the processors saw them end."""
    names = {span.context.span_id: span.name for span in spans}
    shaped = []
    for span in spans:
        item = comparable(span)
        parent = span.parent
        item["parent"] = names.get(parent.span_id, "remote") if parent else None
        shaped.append(item)
    return shaped


def timer_spans_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the TimerSpans (ours and other instrumentations') that reach a record, as
    its request is exported: timers that made no SDK span (the C core makes them without
    calling `TimerSpan.__init__`)."""
    made: list[str] = []
    for name in ("export_timer_spans", "_COMPILED_CLOSE"):  # the Python code's, the C core's
        original = getattr(closing, name)

        def counting(spans: list[Any], timing: Any, original: Any = original) -> None:
            made.extend(span.name for span in spans if isinstance(span, TimerSpan))
            original(spans, timing)

        monkeypatch.setattr(closing, name, counting)
    return made


def sdk_warnings(
    harnesses: tuple[Harness, ...],
    app: Any,
    traceparent: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch | None = None,
) -> list[list[str]]:
    """For each harness, what the SDK's logger said while it served one request of `app`
    (with `monkeypatch`: the app's other tracer from that harness's provider)."""
    logged = []
    for h in harnesses:
        if monkeypatch is not None:
            monkeypatch.setattr(trace, "get_tracer", h.tracer_provider.get_tracer)
        caplog.clear()
        with caplog.at_level(logging.WARNING, "opentelemetry.sdk.trace"):
            request(h.asgi(app), {"traceparent": traceparent})
        logged.append([r.getMessage() for r in caplog.records if r.name.startswith("opent")])
    return logged


def test_a_timer_span_built_at_the_end_is_the_sdk_span(
    pair: tuple[Harness, Harness, StartWatcher],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deferred, sdk, watcher = pair
    made = timer_spans_made(monkeypatch)
    ends.clear()
    logged = sdk_warnings((deferred, sdk), app, PARENT, caplog, monkeypatch)
    # A span's end as the SDK span's: none while it runs, then its instant; an ended span
    # records nothing more, and says so in the SDK's words.
    assert (ends[0], ends[2], ends[3], ends[5]) == (None, False, None, False)
    said = ["Setting attribute on ended span.", "Tried calling _add_event on an ended span."]
    assert logged == [[*said, "Tried calling update_name on an ended span."]] * 2
    ours, theirs = deferred.finished_spans(), sdk.finished_spans()
    # Every timer of the deferred harness was built at the end, and the other tracer's span
    # too (otel_bridge._foreign_spans); the SDK harness made SDK spans, which a processor saw
    # start.
    assert len(made) == 10 and "inner" in made and "SELECT users" in made
    assert "inner" in watcher.started and "SELECT users" in watcher.started
    assert len(ours) == len(theirs) == 11
    assert shape(ours) == shape(theirs)
    by_name = {span.name: span for span in ours}
    by_group = {(span.attributes or {}).get("group"): span for span in ours}
    # And what they hold is right, not only equal.
    outer = next(s for s in ours if (s.attributes or {}).get("op") == "select")
    assert dict(outer.attributes or {}) == {
        "group": "db",
        "op": "select",
        "table": ("users", "orgs"),
        "extra.k": 1,
    }
    assert outer.parent is not None and outer.parent.span_id == ours[-1].context.span_id
    assert by_name["SELECT users"].parent.span_id == by_name["inner"].context.span_id  # type: ignore[union-attr]
    # The end the app read off another tracer's span is the one exported, both ways.
    theirs_by_name = {span.name: span for span in theirs}
    assert (ends[1], ends[4]) == (
        by_name["SELECT users"].end_time,
        theirs_by_name["SELECT users"].end_time,
    )
    failing = by_group["failing"]
    assert failing.status.status_code is StatusCode.ERROR
    assert failing.status.description == "nope"
    assert (failing.attributes or {})["error.type"] == "LookupError"
    annotated = by_group["annotated"]
    assert dict(annotated.attributes or {}) == {"group": "annotated", "app.rows": 3}
    assert annotated.name == "annotated"
    assert [event.name for event in annotated.events] == ["cache.miss"]
    assert annotated.status.status_code is StatusCode.OK
    assert ours[-1].kind is trace.SpanKind.SERVER, "children end (and export) first"
    assert all(f"{span.context.trace_id:032x}" == PARENT[3:35] for span in ours)
    # The views see the same timers either way.
    assert timers(deferred.records()[0]) == timers(sdk.records()[0])


async def changed_late(scope: Any, receive: Any, send: Any) -> None:
    with otel_bridge.timer(group="late"):
        span = trace.get_current_span()
        ends.append(span.is_recording())
    span.set_attribute("app.late", 1)
    span.record_exception(LookupError("late"))
    span.set_status(Status(StatusCode.ERROR))
    span.update_name("late")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("flags", ["01", "00"], ids=["sampled", "sampled-out"])
def test_a_timer_span_changed_after_its_block_says_so_as_the_sdks(
    pair: tuple[Harness, Harness, StartWatcher], caplog: pytest.LogCaptureFixture, flags: str
) -> None:
    # Sampled out upstream, a request's spans still record (otel_bridge's sampler: RECORD_ONLY
    # in a request), so the SDK's span refuses the late changes the same way.
    deferred, sdk, _ = pair
    ends.clear()
    logged = sdk_warnings((deferred, sdk), changed_late, PARENT[:-2] + flags, caplog)
    assert ends == [True, True]
    refused = ("_add_event", "set_status", "update_name")
    said = [f"Tried calling {method} on an ended span." for method in refused]
    assert logged == [["Setting attribute on ended span.", *said]] * 2
    records = [h.records()[0] for h in (deferred, sdk)]
    assert (
        timers(records[0]) == timers(records[1]) == [("late", "late", (("group", "late"),), None)]
    )


def timers(record: RequestRecord) -> list[tuple[Any, ...]]:
    return sorted((t.name, t.kind, t.tags, t.error_type) for t in record.timers)


@pytest.mark.parametrize("sampler", [None, ALWAYS_OFF], ids=["views-only", "sampled-out"])
def test_with_nothing_to_export_the_views_see_every_timer_and_no_span_is_built(
    sampler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    exported, unexported = make_harness(), views_only(sampler)
    made = timer_spans_made(monkeypatch)
    built: list[str] = []
    monkeypatch.setattr(
        "otel_bridge._timer_spans._export",
        lambda span, timing: built.append(span.name) if span.exporters else None,
    )
    try:
        for h in (exported, unexported):
            monkeypatch.setattr(trace, "get_tracer", h.tracer_provider.get_tracer)
            request(h.asgi(app))
        assert timers(unexported.records()[0]) == timers(exported.records()[0])
        assert len(timers(unexported.records()[0])) == 10  # 9 timers, and the client span
        assert len(made) == 20, "both harnesses built every timer (and the client span) at the end"
        assert len(built) == 10, "the exported harness's, handed on at the end"
        # Inside a timer, the current span is the timer's, child of the request's.
        inside = seen_spans[-1]
        assert isinstance(inside, TimerSpan) and inside.is_recording() is False  # ended
    finally:
        for h in (exported, unexported):
            for wrapped in h.apps:
                wrapped.bridge.shutdown()


def test_a_sampled_out_request_exports_no_timer_span_but_records_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = make_harness(ParentBased(ALWAYS_OFF))
    monkeypatch.setattr(trace, "get_tracer", h.tracer_provider.get_tracer)
    try:
        request(h.asgi(app))
        assert h.finished_spans() == []
        assert len(h.records()[0].timers) == 10
    finally:
        for wrapped in h.apps:
            wrapped.bridge.shutdown()


def test_another_sampler_decides_for_each_timer_as_for_the_sdk_span() -> None:
    ours, theirs = make_harness(TraceIdRatioBased(0.5)), make_harness(TraceIdRatioBased(0.5))
    theirs.tracer_provider.add_span_processor(StartWatcher())
    try:
        for h in (ours, theirs):
            for index in range(30):
                # Both harnesses see the same 30 trace ids: the sample must be the same.
                low = (index + 1) * 0x9E3779B97F4A7C15 % (1 << 64)  # spread over the ratio
                parent = f"00-{(7 << 64) | low:032x}-b7ad6b7169203331-00"
                request(h.asgi(timed), {"traceparent": parent})
        assert sorted(s.context.trace_id for s in ours.finished_spans()) == sorted(
            s.context.trace_id for s in theirs.finished_spans()
        )
        assert 0 < len(ours.finished_spans()) < 60
    finally:
        for h in (ours, theirs):
            for wrapped in h.apps:
                wrapped.bridge.shutdown()


async def timed(scope: Any, receive: Any, send: Any) -> None:
    with otel_bridge.timer(group="db"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_tags_past_the_span_limit_get_the_sdk_span_and_its_limits() -> None:
    h = make_harness()
    h.tracer_provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=40))
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    h.tracer_provider.add_span_processor(SimpleSpanProcessor(h.spans))

    async def many(scope: Any, receive: Any, send: Any) -> None:
        with otel_bridge.timer(**{f"t{n:02d}": n for n in range(45)}):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    try:
        request(h.asgi(many))
        timer_span = next(s for s in h.finished_spans() if s.kind is trace.SpanKind.INTERNAL)
        assert len(timer_span.attributes or {}) == 40 and timer_span.dropped_attributes == 5
    finally:
        for wrapped in h.apps:
            wrapped.bridge.shutdown()


def test_timers_past_the_limit_are_counted_and_still_exported(harness: Harness) -> None:
    async def loop(scope: Any, receive: Any, send: Any) -> None:
        for n in range(7):
            with otel_bridge.timer(group="db", n=n):
                pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    settings = otel_bridge.Settings(exporters=()).replace(max_timers=4)
    request(harness.asgi(loop, settings=settings))
    [record] = harness.records()
    assert (len(record.timers), record.timers_dropped) == (4, 3)
    assert len([s for s in harness.finished_spans() if s.kind is trace.SpanKind.INTERNAL]) == 7


def test_a_timer_outside_a_request_is_the_sdk_span(harness: Harness) -> None:
    harness.asgi(timed)  # binds the bridge to the harness's provider
    tracer = harness.tracer_provider.get_tracer("outside")
    with tracer.start_as_current_span("job"), otel_bridge.timer(group="batch"):
        span = trace.get_current_span()
    assert type(span).__name__ != "TimerSpan"


@pytest.mark.parametrize("on", [False, True])
def test_per_timer_cpu_is_measured_when_asked(harness: Harness, on: bool) -> None:
    async def busy(scope: Any, receive: Any, send: Any) -> None:
        with otel_bridge.timer(group="cpu"):
            deadline = time.process_time() + 0.03
            while time.process_time() < deadline:
                pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    settings = otel_bridge.Settings(exporters=()).replace(timer_cpu=on)
    request(harness.asgi(busy, settings=settings))
    [timer] = harness.records()[0].timers
    cpu = timer.ru_utime_ns + timer.ru_stime_ns
    if on:
        assert cpu >= 20_000_000
    else:
        assert cpu == 0, "off by default: no getrusage() a timer"
    record = harness.records()[0]
    # (The kernel splits a thread's CPU into user and system by sampled ticks: the sum is
    # what is exact over a 30 ms block.)
    assert record.ru_utime_ns + record.ru_stime_ns >= 20_000_000, "the request's own, always"


@pytest.mark.parametrize("runtime", ["contextvars", "another"])
def test_a_timer_is_the_current_span_inside_and_gone_after(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    # The timer sets OpenTelemetry's context straight on its ContextVar when the runtime
    # context is the API's default; through the API for any other.
    if runtime == "another":
        monkeypatch.setattr(_current_span, "CONTEXT", None)
        monkeypatch.setattr(_timer_spans, "_CONTEXT", None)
    seen: list[Any] = []

    async def nested(scope: Any, receive: Any, send: Any) -> None:
        server = trace.get_current_span()
        with otel_bridge.timer(group="outer"):
            outer = trace.get_current_span()
            with otel_bridge.timer(group="inner"):
                seen.append((outer, trace.get_current_span()))
            seen.append(trace.get_current_span() is outer)
        seen.append(trace.get_current_span() is server)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    request(harness.asgi(nested))
    (outer, inner), back_to_outer, back_to_server = seen
    assert type(outer) is type(inner) is TimerSpan
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert back_to_outer and back_to_server
    [record] = harness.records()
    assert [timer.kind for timer in record.timers] == ["inner", "outer"]


def test_a_timer_left_in_another_context_logs_as_the_api_and_is_recorded(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Entered in the request's context, exited in a copy of it: the context cannot be
    # reset there. The API logs that and goes on; so does the timer.
    async def crossing(scope: Any, receive: Any, send: Any) -> None:
        block = otel_bridge.timer(group="crossing")
        block.__enter__()
        contextvars.copy_context().run(block.__exit__, None, None, None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with caplog.at_level(logging.ERROR, logger="opentelemetry.context"):
        request(harness.asgi(crossing))
    assert "Failed to detach context" in caplog.text
    [record] = harness.records()
    assert [timer.kind for timer in record.timers] == ["crossing"]


def test_a_timer_span_has_the_resource_the_sdk_span_would_have_now(harness: Harness) -> None:
    # The SDK updates its tracers' resource after a fork (process-dependent detectors); a
    # timer's span carries the resource as the SDK's span made then would.
    from opentelemetry.sdk.resources import Resource

    update = getattr(harness.tracer_provider, "_update_resource", None)
    if update is None:
        pytest.skip("this SDK does not update its tracers' resource")
    wrapped = harness.asgi(timed)
    request(wrapped)
    wrapped.bridge.force_flush()
    update(Resource({"process.pid": 4242}))
    request(wrapped)
    wrapped.bridge.force_flush()
    first, second = (s for s in harness.finished_spans() if s.kind is trace.SpanKind.INTERNAL)
    assert "process.pid" not in first.resource.attributes
    assert second.resource.attributes["process.pid"] == 4242
