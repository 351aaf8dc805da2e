"""The JSON Lines fast path (`EventBuilder.line()`) writes exactly what the dict path writes,
`format_json(build(record))`, for every kind of record, and the exporter uses it only where
nothing needs the dict."""

from __future__ import annotations

import itertools
import json
import random
from http import HTTPStatus
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from benchmarks.pinba import sample_record
from otel_bridge._http import ASGIHeaders, WSGIHeaders
from otel_bridge.exporters.wide_events import WideEventsExporter
from otel_bridge.exporters.wide_events._event import _BASE_KEYS, EventBuilder
from otel_bridge.exporters.wide_events._sinks import FileSink, format_json, format_logfmt
from otel_bridge.record import EMPTY, RequestRecord, Timer


def raised() -> BaseException:
    try:
        raise KeyError("missing ü")
    except KeyError as exc:
        return exc


# Each entry: record fields that change the event's shape or its escaping.
VARIANTS: list[dict[str, Any]] = [
    {},
    {"timers": (), "tags": EMPTY},
    {"tags": EMPTY},  # timers and nothing else: their summary written straight
    {
        "tags": EMPTY,
        "timers": (
            Timer("q", "db", (("group", "db"),), 0, 1_234_567, 0, 0, None),
            Timer("w", "custom", (("group", "x"),), 5, 7_654_321, 0, 0, None, 3),
            Timer("r", "db", (("group", "db"),), 9, 2_000_500, 0, 0, "E"),
        ),
    },
    {"tags": EMPTY, "timers": (), "timers_dropped": 2},
    # The database figures, written straight beside the timers' summary (or not: a NaN, an
    # app's field beside them, a bool).
    {
        "tags": EMPTY,
        "fields": {".db.query_count": 2, ".db.query_ms": 1.5, ".db.duplicate_queries": 0},
    },
    {
        "tags": EMPTY,
        "timers": (),
        "timers_dropped": 1,
        "fields": {".db.query_count": 1, ".db.query_ms": 0.0, ".db.duplicate_queries": 0},
    },
    {"tags": EMPTY, "fields": {".db.query_count": 1, ".db.query_ms": float("nan")}},
    {"tags": EMPTY, "fields": {".db.query_count": True, ".db.query_ms": 2.25}},
    {"tags": EMPTY, "fields": {".db.query_count": 1, "n": 2}},
    {"route": None, "query": "a=1&token=s3cr%C3%A9t&b=%22", "status": 0},
    {"path": '/ü/"quoted"\\back\u2028\x01', "user_agent": None, "client_address": None},
    {"server_address": None, "trace_id": 0, "span_id": 0, "completed": False},
    {"status": HTTPStatus.SERVICE_UNAVAILABLE, "error_type": "503"},
    {"exception": ValueError("boom " * 200), "error_type": "ValueError", "status": 500},
    {"timers_dropped": 3, "exception": raised(), "error_type": "KeyError"},
    {"fields": MappingProxyType({"n": 3, "nan": float("nan"), "big": 1e300, "none": None})},
    {"fields": MappingProxyType({"obj": object, "list": [1, "2"], ".db.count": 4})},
    {"fields": MappingProxyType({".duration_ms": 1.0})},  # replaces a fixed field
    {"tags": MappingProxyType({"ü": "\x7f", "q": '"'})},
    {"interface": "zerocode"},
    {"resource": MappingProxyType({"service.name": ("a", "b"), "host.name": None})},
    {"resource": MappingProxyType({})},
    {"duration_ns": 1, "app_duration_ns": 10**15, "ru_utime_ns": 0, "ru_stime_ns": 7},
    # Exact half microseconds, where rounding rules part.
    {"duration_ns": 2_500, "app_duration_ns": 1_000_500, "ru_utime_ns": 499, "ru_stime_ns": 1},
    {
        "headers": ASGIHeaders([(b"x-request-id", b"req-\xe9"), (b"x-request-start", b"t=1.5")]),
    },
    {
        "headers": ASGIHeaders([(b"x-request-start", b"t=1700000000.100")]),
        "start_time_ns": 1_700_000_000_123_456_789,
    },
    {"headers": WSGIHeaders({"HTTP_X_FORWARDED_FOR": "203.0.113.9, 10.0.0.1"})},
    {
        "headers": ASGIHeaders([(b"x-request-id", b"bad\nid")]),
        "start_time_ns": 1_700_000_000_123_456_789,
    },
]


def records() -> list[RequestRecord]:
    base = sample_record()._replace(
        resource=MappingProxyType({"service.name": "shop", "host.name": "web-1"})
    )
    out = [base._replace(**variant) for variant in VARIANTS]
    # And mixtures of them: the variants' effects must not depend on each other.
    rng = random.Random(7)
    for _ in range(300):
        mixed: dict[str, Any] = {}
        for variant in rng.sample(VARIANTS, 3):
            mixed.update(variant)
        out.append(base._replace(**mixed))
    return out


@pytest.mark.parametrize("trust", [False, True])
def test_a_line_is_the_dict_event_formatted(trust: bool) -> None:
    builder = EventBuilder(secret_params=("token",), trust_forwarded_for=trust)
    keys: set[str] = set()
    for record in records():
        event = builder.build(record)
        assert builder.line(record) == format_json(event), record
        keys.update(event)
    # The records reach every field the builder writes, and line()'s list of the fixed ones
    # (what a field may not replace on the fast path) is build()'s.
    assert {"queue_ms", "url.query", "exception.location", "timers.dropped", "tag.q"} <= keys
    extras = ("timers.", "tag.", "app.", "error.", "exception.", "db.")
    assert {key for key in keys if not key.startswith(extras)} == _BASE_KEYS


def events_written(path: Path, exporter: WideEventsExporter, batch: list[RequestRecord]) -> str:
    exporter.export(batch)
    exporter.shutdown()
    return path.read_text(encoding="utf-8")


def test_the_exporter_writes_the_same_file_either_way(tmp_path: Path) -> None:
    batch = records()[:40]
    fast = WideEventsExporter(FileSink(str(tmp_path / "fast"), format_json))
    # A scrub that changes nothing sends the exporter the dict way.
    slow = WideEventsExporter(FileSink(str(tmp_path / "slow"), format_json), scrub=lambda e: e)
    fast_text = events_written(tmp_path / "fast", fast, batch)
    assert fast_text == events_written(tmp_path / "slow", slow, batch)
    assert fast.health.counts["wide_events.written"] == len(batch)
    assert [json.loads(line)["event"] for line in fast_text.split("\n")[:-1]] == ["request"] * 40


@pytest.mark.parametrize(
    ("options", "formatter"),
    [({"scrub": lambda e: e}, format_json), ({"sample_rate": 2}, format_json), ({}, format_logfmt)],
)
def test_the_dict_path_stays_where_something_needs_the_dict(
    tmp_path: Path, options: dict[str, Any], formatter: Any
) -> None:
    exporter = WideEventsExporter(FileSink(str(tmp_path / "e"), formatter), **options)
    calls = itertools.count()
    line = exporter.builder.line
    exporter.builder.line = lambda record: (next(calls), line(record))[1]  # type: ignore[method-assign]
    exporter.export(records()[:5])
    assert next(calls) == 0
    exporter.shutdown()


@pytest.mark.parametrize(
    ("nanoseconds", "milliseconds"),
    [
        (0, 0.0),
        (499, 0.0),
        (500, 0.001),  # half a microsecond rounds up
        (2_500, 0.003),
        (1_000_500, 1.001),
        (999_499, 0.999),
        (999_500, 1.0),
        (123_456_789, 123.457),
        (3_600 * 10**9, 3_600_000.0),
    ],
)
def test_times_are_milliseconds_to_the_microsecond(nanoseconds: int, milliseconds: float) -> None:
    record = sample_record()._replace(
        duration_ns=nanoseconds,
        app_duration_ns=nanoseconds,
        ru_utime_ns=nanoseconds - 1,
        ru_stime_ns=1,
    )
    builder = EventBuilder()
    for event in (builder.build(record), json.loads(builder.line(record))):
        assert event["duration_ms"] == event["app_duration_ms"] == milliseconds
        assert event["cpu_ms"] == milliseconds
