"""The C fold (otel_bridge._speedups) of a request whose queries are each seen twice: Django's
query span holding the driver's (psycopg's instrumentation on too, as opentelemetry-instrument
sets it up). Its timers and figures are the Python fold's, whatever the spans' shapes and
times; the usual shape runs no Python code."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, SpanKind

from otel_bridge import closing
from otel_bridge._foreign_spans import ForeignSpan
from otel_bridge._timer_spans import TimerSpan
from tests.test_speedups import QUERY

pytestmark = pytest.mark.skipif(
    os.environ.get("OTEL_BRIDGE_TEST_WITHOUT_C") == "1", reason="the C core is hidden"
)

SERVER = SpanContext(1, 1, False)
# What psycopg's instrumentation (opentelemetry-instrumentation-dbapi) sets on its span.
DRIVER: dict[str, Any] = {
    "db.system": "postgresql",
    "db.name": "shop",
    "db.statement": 'SELECT "id" FROM "item" WHERE "id" = %s',
    "db.user": "shop",
    "net.peer.name": "localhost",
    "net.peer.port": 5432,
}
DRIVER_TRACER = TracerProvider().get_tracer("opentelemetry.instrumentation.psycopg")
OTHER_TRACER = TracerProvider().get_tracer("opentelemetry.instrumentation.sqlalchemy")


def django_span(span_id: int, start: int, duration: int, attributes: Any = QUERY) -> TimerSpan:
    span = TimerSpan(
        SpanContext(1, span_id, False),
        "SELECT shop",
        SERVER,
        attributes,
        (),
        start,
        SpanKind.CLIENT,
    )
    span.end_time, span.closed = start + duration, True
    return span


def driver_span(
    span_id: int,
    parent: Any,  # (None: never made so, read as "no parent" by the Python fold)
    start: int,
    duration: int | None,
    attributes: Any = DRIVER,
    tracer: Any = DRIVER_TRACER,
) -> ForeignSpan:
    span = ForeignSpan(
        SpanContext(1, span_id, False), "SELECT", parent, attributes, (), start, SpanKind.CLIENT
    )
    span.tracer, span.record_exceptions, span.status_on_exception = tracer, True, True
    span.end_time = None if duration is None else start + duration
    span.closed = True
    return span


def folded(result: Any) -> tuple[Any, ...]:
    timers, counts = result
    return timers, None if counts is None else (counts.fields(0, 0), counts.seen)


def test_the_usual_request_is_folded_in_c_alone() -> None:
    spans: list[Any] = []
    for n in range(3):  # an N+1: each query Django's span around the driver's
        outer = django_span(10 + 2 * n, 100_000 * n + 5_000, 50_000)
        spans.append(driver_span(11 + 2 * n, outer._context, 100_000 * n + 10_000, 40_000))
        spans.append(outer)  # (ended after the one it holds)
    timers, counts = closing.fold_timers(spans, 1)  # the Python code makes the tags
    called: list[str] = []
    sys.setprofile(
        lambda frame, event, arg: called.append(frame.f_code.co_name) if event == "call" else None
    )
    try:
        assert closing._COMPILED_FOLD is not None
        result = closing._COMPILED_FOLD(spans, 1)
    finally:
        sys.setprofile(None)
    assert called == []  # no Python code ran
    assert folded(result) == folded((timers, counts))
    tags = (("group", "db"), ("op", "select"), ("server", "localhost"))
    assert result[0] == tuple(
        ("SELECT shop", "db", tags, 100_000 * n + 4_999, 50_000, 0, 0, None, 1) for n in range(3)
    ), "each query once: Django's span, the driver's inside it left out"
    assert result[1] is not None and result[1].fields(0, 0) == {
        ".db.query_count": 3,
        ".db.query_ms": 0.15,
        ".db.duplicate_queries": 2,
    }


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 30),  # after the last query ended (negative: overlapping it)
            st.integers(1, 30),  # the query's duration
            # the driver's span: none, or where it starts and ends inside Django's
            st.none() | st.tuples(st.integers(-2, 31), st.integers(-2, 31)),
            # who the driver's span is a child of: Django's span, the request, nobody
            st.sampled_from(["outer", "outer", "outer", "request", "none"]),
            # what else it is: the driver's, another instrumentation's, not a query, a
            # failed one, one the instrumentation changed, one of another statement
            st.sampled_from(["driver", "driver", "driver", "other", "plain", "failed", "changed"])
            | st.just("statement"),
            st.booleans(),  # Django's span a query of its own (else a "connect": no statement)
        ),
        max_size=6,
    ),
)
def test_queries_seen_twice_are_folded_as_the_python_code_folds_them(
    queries: list[tuple[Any, ...]],
) -> None:
    spans: list[Any] = []
    end = 1_000
    for gap, duration, inner, parent_of, what, statement in queries:
        start = end + gap
        end = start + duration
        outer_id = 10 + len(spans)
        attributes = QUERY if statement else {"db.system.name": "postgresql"}
        outer = django_span(outer_id, start, duration, attributes)
        if inner is not None:
            offset, length = inner
            parent = {"outer": outer._context, "request": SERVER, "none": None}[parent_of]
            tracer = OTHER_TRACER if what == "other" else DRIVER_TRACER
            driver_attributes = {
                "plain": {"http.request.method": "GET"},
                "statement": {**DRIVER, "db.statement": "SELECT 2"},
            }.get(what, DRIVER)
            span = driver_span(
                outer_id + 1,
                parent,
                start + offset,
                max(0, length - offset),
                driver_attributes,
                tracer,
            )
            if what == "failed":
                span.error = ("OperationalError", "gone")
            if what == "changed":
                span.changes = [("set_attribute", ("db.rows", 1), {})]
            spans.append(span)
        spans.append(outer)
    spans.sort(key=lambda span: span.end_time or span.start_time)  # in end order
    python = folded(closing.fold_timers(spans, 500))  # (makes the tags)
    assert closing._COMPILED_FOLD is not None
    assert folded(closing._COMPILED_FOLD(spans, 500)) == python
    assert folded(closing._COMPILED_FOLD(tuple(spans), 500)) == python
