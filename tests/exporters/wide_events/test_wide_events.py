from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import otel_bridge
from otel_bridge.exporters.wide_events import WideEventsExporter
from otel_bridge.exporters.wide_events._event import EventBuilder, queue_time_ms
from otel_bridge.exporters.wide_events._sinks import (
    FileSink,
    LoggingSink,
    OTLPSink,
    Sink,
    format_json,
    format_logfmt,
)
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


class ListSink(Sink):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail: BaseException | None = None

    def write(self, events: Any) -> None:
        if self.fail is not None:
            raise self.fail
        self.events.extend(events)


async def order(request: Any) -> Response:
    otel_bridge.wide_event.set(customer=request.path_params["n"], plan="pro")
    otel_bridge.wide_event.incr("items", 2)
    otel_bridge.wide_event.incr("items")
    otel_bridge.tag(region="eu")
    with otel_bridge.timer(group="db", op="select"):
        await asyncio.sleep(0.001 * (int(request.path_params["n"]) % 3))
    return PlainTextResponse("ok")


async def fail(request: Any) -> Response:
    raise ValueError("x" * 800)


def app() -> Starlette:
    return Starlette(routes=[Route("/orders/{n}", order), Route("/fail", fail)])


def client(wrapped: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(wrapped, raise_app_exceptions=False, client=("10.0.0.9", 4000))
    return httpx.AsyncClient(transport=transport, base_url="http://shop.test")


async def test_one_event_per_request_with_fields_and_no_cross_talk(harness: Harness) -> None:
    sink = ListSink()
    wrapped = harness.asgi(app(), record_exporters=[WideEventsExporter(sink)])
    async with client(wrapped) as c:
        await asyncio.gather(*(c.get(f"/orders/{n}") for n in range(100)))
    wrapped.bridge.force_flush()
    assert len(sink.events) == 100
    for event in sink.events:
        n = event["url.path"].rsplit("/", 1)[1]
        assert event["app.customer"] == n, "each request sees only its own fields"
        assert (event["app.items"], event["app.plan"], event["tag.region"]) == (3, "pro", "eu")
        assert event["event"] == "request" and event["http.route"] == "/orders/{n}"
        assert event["timers.db.count"] == 1, "group=db: a db timer, as Pinba has it"
        assert "timers.custom.count" not in event
    assert len({event["request.id"] for event in sink.events}) == 100


async def test_event_contents_and_secrets(harness: Harness) -> None:
    sink = ListSink()
    wrapped = harness.asgi(app(), record_exporters=[WideEventsExporter(sink)])
    started = time.time()
    headers = {
        "authorization": "Bearer SECRET-TOKEN",
        "cookie": "session=SECRET-COOKIE",
        "x-request-id": "req-123",
        "x-request-start": f"t={started - 0.25:.3f}",
        "user-agent": "probe/1",
    }
    async with client(wrapped) as c:
        await c.get("/orders/1?page=2&token=SECRET-QUERY&api_key=k", headers=headers)
        await c.get("/fail")
    wrapped.bridge.force_flush()
    ok, failed = sink.events
    text = json.dumps(sink.events)
    assert "SECRET" not in text, "no header or configured query parameter leaks"
    assert ok["url.query"] == "page=2&token=REDACTED&api_key=REDACTED"
    assert ok["request.id"] == "req-123"
    assert 240 <= ok["queue_ms"] <= 400
    assert (ok["client.address"], ok["user_agent.original"]) == ("10.0.0.9", "probe/1")
    assert ok["trace_id"] and ok["span_id"] and ok["duration_ms"] > 0
    assert ok["service.name"] and ok["process.pid"] > 0
    assert (failed["http.response.status_code"], failed["error.type"]) == (500, "ValueError")
    assert len(failed["exception.message"]) == 501
    assert failed["exception.location"].endswith("in fail")
    assert "test_wide_events.py" in failed["exception.location"]


CORPUS = Path(__file__).parents[2] / "data" / "secrets.jsonl"


async def test_secret_shapes_and_huge_values_never_reach_an_event(
    harness: Harness, tmp_path: Path
) -> None:
    """The corpus's query and matrix-parameter shapes, and 60 KB request values, in events
    built as dicts (any sink) and written as JSON lines straight from the record."""
    shapes = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    queries = [shape for shape in shapes if shape["view"] == "query"]
    paths = [shape for shape in shapes if shape["view"] == "path"]
    listed = ListSink()
    lines = FileSink(str(tmp_path / "events.jsonl"), format_json)

    async def anything(request: Any) -> Response:
        return PlainTextResponse("ok")

    plain = Starlette(routes=[Route("/{rest:path}", anything)])
    wrapped = harness.asgi(
        plain, record_exporters=[WideEventsExporter(listed), WideEventsExporter(lines)]
    )
    huge = "A" * 60_000
    async with client(wrapped) as c:
        for shape in queries:
            await c.get(f"/q?{shape['given']}")
        for shape in paths:
            await c.get(shape["given"])
        half = huge[:30_000]  # httpx takes URLs up to 64 KiB
        await c.get(f"/{half}?q={half}", headers={"user-agent": huge, "x-request-id": huge})
    wrapped.bridge.force_flush()
    written = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert written == listed.events, "both ways write the same events"
    events = listed.events
    assert [e["url.query"] for e in events[: len(queries)]] == [q["shown"] for q in queries]
    found = events[len(queries) : len(queries) + len(paths)]
    assert [e["url.path"] for e in found] == [p["shown"] for p in paths]
    big = events[-1]
    for key in ("url.path", "url.query", "user_agent.original"):
        assert len(big[key]) <= 2048 + len("…[truncated]"), key
        assert big[key].endswith("…[truncated]"), key
    assert big["request.id"] == big["trace_id"], "an oversized request id is not used"
    assert max(len(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()) < 8000


def test_queue_time_reads_seconds_milliseconds_and_microseconds() -> None:
    start = 1_700_000_000_500_000_000
    assert queue_time_ms("t=1700000000.400", start) == pytest.approx(100.0)
    assert queue_time_ms("t=1700000000400", start) == pytest.approx(100.0)
    assert queue_time_ms("1700000000400000", start) == pytest.approx(100.0)
    assert queue_time_ms("t=1700000001.000", start) is None, "in the future: ignored"
    assert queue_time_ms("garbage", start) is None
    assert queue_time_ms(None, start) is None


async def test_sampling_keeps_errors_and_slow_requests(harness: Harness) -> None:
    sink = ListSink()

    async def slow(request: Any) -> Response:
        await asyncio.sleep(0.1)
        return PlainTextResponse("slow")

    exporter = WideEventsExporter(sink, sample_rate=10, slow_ms=50)
    routes = [*app().routes, Route("/slow", slow)]
    wrapped = harness.asgi(Starlette(routes=routes), record_exporters=[exporter])
    async with client(wrapped) as c:
        for n in range(0, 300, 3):  # n % 3 == 0: no sleep, fast
            await c.get(f"/orders/{n}", headers={"x-request-id": f"fast-{n}"})
        for _ in range(5):
            await c.get("/fail")
        await c.get("/slow", headers={"x-request-id": "slow"})
    wrapped.bridge.force_flush()
    first = {e["request.id"]: e for e in sink.events if e["request.id"].startswith("fast-")}
    sampled = {rid for rid, e in first.items() if "sample_rate" in e}
    assert 1 <= len(sampled) <= 30, "about 1 in 10 of 100 ordinary requests"
    assert all(e["sample_rate"] == 10 for rid, e in first.items() if rid in sampled)
    errors = [e for e in sink.events if e.get("error.type")]
    assert len(errors) == 5 and not any("sample_rate" in e for e in errors), "weight 1"
    (slow_event,) = (e for e in sink.events if e["request.id"] == "slow")
    assert "sample_rate" not in slow_event, "always kept: it stands for itself only"
    # Deterministic by request id: the same ids give the same choice. (A "fast" request the
    # loaded machine made slow is kept for that in one run: leave those out.)
    sink.events.clear()
    async with client(wrapped) as c:
        for n in range(0, 300, 3):
            await c.get(f"/orders/{n}", headers={"x-request-id": f"fast-{n}"})
    wrapped.bridge.force_flush()
    second = {e["request.id"]: e for e in sink.events}
    slowed = {rid for run in (first, second) for rid, e in run.items() if e["duration_ms"] >= 50}
    resampled = {rid for rid, e in second.items() if "sample_rate" in e}
    assert resampled - slowed == sampled - slowed
    assert set(second) - slowed == resampled - slowed, "nothing else kept"


async def test_scrub_hook_edits_or_drops_and_a_failing_one_is_counted(harness: Harness) -> None:
    sink = ListSink()

    def scrub(event: dict[str, Any]) -> dict[str, Any] | None:
        if event["url.path"] == "/orders/0":
            return None
        if event["url.path"] == "/orders/1":
            raise RuntimeError("scrubber bug")
        event.pop("user_agent.original", None)
        return event

    wrapped = harness.asgi(app(), record_exporters=[WideEventsExporter(sink, scrub=scrub)])
    async with client(wrapped) as c:
        for n in range(3):
            assert (await c.get(f"/orders/{n}")).status_code == 200
    wrapped.bridge.force_flush()
    assert [e["url.path"] for e in sink.events] == ["/orders/2"]
    assert "user_agent.original" not in sink.events[0]
    assert wrapped.bridge.health.errors["exporter.wide_events.scrub"] == 1


async def test_a_failing_sink_never_reaches_the_app_and_recovers(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ListSink()
    sink.fail = OSError(28, "No space left on device")
    wrapped = harness.asgi(app(), record_exporters=[WideEventsExporter(sink)])
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        async with client(wrapped) as c:
            for n in range(10):
                assert (await c.get(f"/orders/{n}")).status_code == 200
            wrapped.bridge.force_flush()
            sink.fail = None
            await c.get("/orders/99")
        wrapped.bridge.force_flush()
    health = wrapped.bridge.health
    assert health.dropped["wide_events.sink_failed"] == 10
    assert sum("wide_events.sink" in r.getMessage() for r in caplog.records) == 1
    assert [e["url.path"] for e in sink.events] == ["/orders/99"], "it recovered"


def test_file_sink_appends_lines_and_reopens_after_an_error(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = FileSink(str(path), format_json)
    sink.write([{"a": 1}])
    sink.close()
    sink.write([{"b": "é"}, {"c": float("nan")}])
    sink.close()
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"a": 1},
        {"b": "é"},
        {"c": None},
    ]


def test_logfmt_quotes_only_when_needed() -> None:
    line = format_logfmt(
        {
            "a": "plain/{x}",
            "b": "two words",
            "c": True,
            "d": 1.5,
            "e": None,
            "f": 'q"uote',
            "g": "é",
        }
    )
    assert line == 'a=plain/{x} b="two words" c=true d=1.5 f="q\\"uote" g="é"'


def test_logging_sink_hands_the_event_to_handlers(caplog: pytest.LogCaptureFixture) -> None:
    sink = LoggingSink("shop.events", format_logfmt)
    with caplog.at_level(logging.INFO, logger="shop.events"):
        sink.write([{"event": "request", "http.route": "/x"}])
    [record] = caplog.records
    assert record.name == "shop.events"
    assert record.getMessage() == "event=request http.route=/x"
    assert record.wide_event == {"event": "request", "http.route": "/x"}  # type: ignore[attr-defined]


def test_otlp_sink_emits_log_records() -> None:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs import export as logs_export

    # The in-memory exporter was renamed in later SDKs; the oldest supported has the old name.
    names = ("InMemoryLogRecordExporter", "InMemoryLogExporter")
    exporter_class: Any = next(getattr(logs_export, n) for n in names if hasattr(logs_export, n))
    exporter = exporter_class()
    provider = LoggerProvider()
    provider.add_log_record_processor(logs_export.SimpleLogRecordProcessor(exporter))
    OTLPSink(provider).write([{"event": "request", "http.route": "/x", "duration_ms": 1.5}])
    [log] = exporter.get_finished_logs()
    attributes = dict(log.log_record.attributes or {})
    # Newer SDKs carry the event name on the record; older ones in `event.name`.
    name = getattr(log.log_record, "event_name", None) or attributes.pop("event.name")
    assert name == "http.request"
    assert attributes == {
        "event": "request",
        "http.route": "/x",
        "duration_ms": 1.5,
    }


def test_event_builder_trusts_forwarded_for_only_when_told() -> None:
    assert EventBuilder().trust_forwarded_for is False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_WIDE_EVENTS_SINK", "kafka"),
        ("OTEL_EXPORTER_WIDE_EVENTS_FORMAT", "xml"),
        ("OTEL_EXPORTER_WIDE_EVENTS_SAMPLE_RATE", "0"),
        ("OTEL_EXPORTER_WIDE_EVENTS_SLOW_MS", "x"),
        ("OTEL_EXPORTER_WIDE_EVENTS_SINK", "file:"),
    ],
)
def test_bad_settings_fail_at_startup(variable: str, value: str) -> None:
    with pytest.raises(otel_bridge.ConfigError, match=variable):
        otel_bridge.Settings.from_env({variable: value})


def test_settings_build_the_exporter(tmp_path: Path) -> None:
    settings = otel_bridge.Settings.from_env(
        {
            "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{tmp_path}/e.log",
            "OTEL_EXPORTER_WIDE_EVENTS_FORMAT": "logfmt",
            "OTEL_EXPORTER_WIDE_EVENTS_SAMPLE_RATE": "5",
            "OTEL_EXPORTER_WIDE_EVENTS_REDACT_PARAMS": "otp",
            "OTEL_EXPORTER_WIDE_EVENTS_TRUST_FORWARDED_FOR": "true",
        }
    )
    exporter = WideEventsExporter.from_settings(settings)
    assert isinstance(exporter.sink, FileSink) and exporter.sample_rate == 5
    assert exporter.builder.secret_params == frozenset({"otp", "code"}), "the list adds names"
    assert exporter.builder.trust_forwarded_for is True


async def slow_checkout(request: Any) -> Response:
    otel_bridge.wide_event.set(cart="c-1")
    with otel_bridge.timer(group="payment", op="charge"):
        await asyncio.sleep(2.0)
    return PlainTextResponse("paid")


async def test_a_request_past_its_deadline_gets_one_timeout_event_and_no_other(
    harness: Harness,
) -> None:
    sink = ListSink()
    settings = otel_bridge.Settings(exporters=()).replace(wide_events_timeout=0.3)
    wrapped = harness.asgi(
        Starlette(routes=[Route("/checkout", slow_checkout)]),
        settings=settings,
        record_exporters=[WideEventsExporter(sink)],
    )
    async with client(wrapped) as c:
        task = asyncio.create_task(c.get("/checkout"))
        for _ in range(160):  # the deadline is at 0.3 s, the request ends at 2 s
            await asyncio.sleep(0.01)
            if sink.events:
                break
        assert not task.done()
        [timeout] = sink.events  # written while the request still runs
        assert (await task).text == "paid"
    wrapped.bridge.force_flush()
    assert sink.events == [timeout], "exactly one event for the request"
    assert timeout["event"] == "timeout" and timeout["error.type"] == "timeout"
    assert timeout["http.route"] == "/checkout" and timeout["app.cart"] == "c-1"
    assert 300 <= timeout["duration_ms"] < 2000
    assert "slow_checkout" in timeout["stack"], "the stack says what it was doing"
    [open_span] = json.loads(timeout["open_spans"])
    assert open_span["name"] == "payment charge" and open_span["running_ms"] >= 250
    counts = wrapped.bridge.health.counts
    assert counts["wide_events.timeouts"] == counts["wide_events.completed_after_timeout"] == 1


async def blocking_report(request: Any) -> Response:
    time.sleep(2.5)  # a blocking call in async code: the whole loop stalls
    return PlainTextResponse("done")


async def test_a_blocked_event_loop_is_reported_with_its_stack_and_waiting_requests(
    harness: Harness,
) -> None:
    sink = ListSink()
    wrapped = harness.asgi(
        Starlette(routes=[Route("/report", blocking_report), Route("/orders/{n}", order)]),
        record_exporters=[WideEventsExporter(sink)],
    )
    async with client(wrapped) as c:
        await c.get("/orders/1")  # the first request registers the loop with the watchdog
        await asyncio.sleep(0.3)
        wrapped.bridge.force_flush()
        sink.events.clear()
        assert (await c.get("/report")).text == "done"
    wrapped.bridge.force_flush()
    kinds = [e["event"] for e in sink.events]
    assert kinds == ["loop_blocked", "request"], "one report per stall, then the request"
    blocked = sink.events[0]
    assert blocked["blocked_ms"] >= 1000
    assert "blocking_report" in blocked["stack"] and "time.sleep" in blocked["stack"]
    [waiting] = json.loads(blocked["inflight"])
    assert waiting["url.path"] == "/report"


def test_json_lines_carry_any_value_as_text_and_any_mapping() -> None:
    class Custom:
        def __str__(self) -> str:
            return "custom!"

    line = format_json({"a": (1, "x"), "b": Custom(), "c": float("-inf"), "d": True, "e": 2})
    assert json.loads(line) == {"a": "(1, 'x')", "b": "custom!", "c": None, "d": True, "e": 2}
    proxy = MappingProxyType({"a": 1, "b": "é"})
    assert format_json(proxy) == '{"a":1,"b":"é"}'


@pytest.mark.parametrize(
    "time_ns",
    [0, 1_763_800_000_000_000_000, 1_763_800_000_999_999_999, 1_763_800_001_000_000_001],
)
def test_event_timestamps_are_rfc3339_utc_microseconds(harness: Harness, time_ns: int) -> None:
    def hello(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"hi"]

    app = harness.wsgi(hello)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://t") as client:
        client.get("/")
    (recorded,) = harness.records()
    builder = EventBuilder()
    for at in (time_ns, time_ns + 1_500_000_000, time_ns):  # a new second, then back
        record = recorded._replace(start_time_ns=at)
        expected = datetime.datetime.fromtimestamp(at // 1000 / 1e6, datetime.UTC)
        text = builder.build(record)["timestamp"]
        assert text == expected.isoformat(timespec="microseconds").replace("+00:00", "Z")
