"""The C fold (otel_bridge._speedups) of a request whose queries are each seen twice: Django's
query span holding the driver's (psycopg's instrumentation on too, as opentelemetry-instrument
sets it up). Its timers and figures are the Python fold's, whatever the spans' shapes and
times; the usual shape runs no Python code."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, SpanKind

from otel_bridge import closing
from otel_bridge._foreign_spans import ForeignSpan
from otel_bridge._timer_spans import TimerSpan
from tests.test_speedups import QUERY, python_calls

pytestmark = pytest.mark.skipif(
    os.environ.get("OTEL_BRIDGE_TEST_WITHOUT_C") == "1", reason="the C core is hidden"
)

SERVER = SpanContext(1, 1, False)
# What psycopg's instrumentation (opentelemetry-instrumentation-dbapi) sets on its span.
DRIVER: dict[str, Any] = {
    "db.system": "postgresql",
    "db.name": "shop",
    # (the driver's own text of Django's statement: counting it in place of Django's would
    # show in the figures' statements)
    "db.statement": 'SELECT "id" FROM "item" WHERE "id" = $1',
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
    if counts is None:
        return timers, None
    raw = (counts.count, counts.nanoseconds, counts.duplicates, counts.seen)
    return timers, raw, counts.fields(0, 0)


def test_the_usual_request_is_folded_in_c_alone() -> None:
    spans: list[Any] = []
    for n in range(3):  # an N+1: each query Django's span around the driver's
        outer = django_span(10 + 2 * n, 100_000 * n + 5_000, 50_000)
        driver = driver_span(11 + 2 * n, outer._context, 100_000 * n + 10_000, 40_000, {})
        # dbapi's instrumentation sets its attributes once the span has started
        driver.changes = [
            ("set_attributes", ({k: DRIVER[k] for k in list(DRIVER)[:3]},), {}),
            *(("set_attribute", (k, DRIVER[k]), {}) for k in list(DRIVER)[3:]),
        ]
        spans.append(driver)
        spans.append(outer)  # (ended after the one it holds)
    timers, counts = closing.fold_timers(spans, 1)  # the Python code makes the tags
    assert closing._COMPILED_FOLD is not None
    with python_calls() as called:
        result = closing._COMPILED_FOLD(spans, 1)
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


def test_sqlalchemys_span_beside_the_drivers_is_folded_in_c_alone() -> None:
    # SQLAlchemy's instrumentation starts its span out of the context, so the driver's span is
    # its sibling (the same parent); each sets its attributes after its start.
    spans: list[Any] = []
    late: list[Any] = [("set_attribute", (key, value), {}) for key, value in DRIVER.items()]
    for n in range(3):
        outer = driver_span(10 + 2 * n, SERVER, 100_000 * n + 5_000, 50_000, {}, OTHER_TRACER)
        outer.changes = list(late)
        driver = driver_span(11 + 2 * n, SERVER, 100_000 * n + 10_000, 40_000, {})
        driver.changes = list(late)
        spans.append(driver)
        spans.append(outer)  # (ended after the driver's)
    timers, counts = closing.fold_timers(spans, 1)
    assert closing._COMPILED_FOLD is not None
    with python_calls() as called:
        result = closing._COMPILED_FOLD(spans, 1)
    assert called == []  # no Python code ran
    assert folded(result) == folded((timers, counts))
    assert [timer.start_ns for timer in result[0]] == [4_999, 104_999, 204_999], "SQLAlchemy's"
    assert result[1] is not None and result[1].fields(0, 0)[".db.query_count"] == 3


def test_two_spans_of_one_instrumentation_at_once_are_two_queries() -> None:
    # SQLAlchemy's two queries at once (asyncio.gather), one inside the other in time, of the
    # same statement: not one query seen twice, as the driver's beside SQLAlchemy's is.
    outer = driver_span(10, SERVER, 5_000, 50_000, DRIVER, OTHER_TRACER)
    inner = driver_span(11, SERVER, 10_000, 40_000, DRIVER, OTHER_TRACER)
    spans = [inner, outer]
    python = folded(closing.fold_timers(spans, 1))
    assert closing._COMPILED_FOLD is not None
    result = closing._COMPILED_FOLD(spans, 1)
    assert folded(result) == python
    assert len(result[0]) == 2
    assert result[1] is not None and result[1].fields(0, 0)[".db.query_count"] == 2


US = 1_000  # the generated times' unit (ns): whole microseconds, so query_ms tells them apart


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-3, 30),  # after the last query ended (negative: overlapping it)
            st.integers(1, 30),  # the query's duration
            # the inner span: none, just inside the outer one (as the driver's is in
            # Django's), or where it starts and ends from the outer one's start
            st.sampled_from([None, "inside", "inside"])
            | st.tuples(st.integers(-2, 31), st.integers(-2, 31)),
            # who the inner span is a child of: the outer span, the request, nobody
            st.sampled_from(["outer", "outer", "outer", "request", "none"]),
            # what the inner span is: the driver's, with its attributes set after its start as
            # dbapi's instrumentation sets them ("late"), another instrumentation's query,
            # not a query, a failed one, one of another statement; one changed: an attribute
            # added, one of a value the SDK cleans (a list), a new name, the database system
            # or the statement set late
            st.sampled_from(["driver", "late", "late", "other", "plain", "failed", "statement"])
            | st.sampled_from(["changed", "listed", "renamed", "system", "late_statement"]),
            # what the outer span is: Django's query, Django's "connect" (no statement),
            # another instrumentation's query (SQLAlchemy's: a ForeignSpan around the timer
            # inside, or around the driver's span, "beside"), an app's timer(group="db")
            st.sampled_from(["django", "django", "connect", "foreign", "beside", "app"]),
        ),
        max_size=6,
    ),
    st.integers(0, 2_000),  # the request's start (µs): some spans may start before it
)
def test_queries_seen_twice_are_folded_as_the_python_code_folds_them(
    queries: list[tuple[Any, ...]], request_start: int
) -> None:
    spans: list[Any] = []
    end = 1_000 * US
    # Each query's (start, end, its inner span's (start, end) or None), when it is one C folds
    # alone: a query's span, alone or holding its own child query's span as it is, or another
    # instrumentation's span of the same query beside it (the same parent and statement).
    shapes: list[tuple[int, int, tuple[int, int] | None]] | None = []
    for gap, duration, inner, parent_of, what, outer_is in queries:
        start = end + gap * US
        end = start + duration * US
        outer_id = 10 + len(spans)
        outer: Any
        if outer_is in ("foreign", "beside"):
            outer = driver_span(outer_id, SERVER, start, duration * US, DRIVER, OTHER_TRACER)
        elif outer_is == "app":
            outer = TimerSpan(
                SpanContext(1, outer_id, False), "db", SERVER, {"group": "db"}, (), start
            )
            outer.end_time, outer.closed = end, True
        else:
            attributes = QUERY if outer_is == "django" else {"db.system.name": "postgresql"}
            outer = django_span(outer_id, start, duration * US, attributes)
        held = None
        if inner is not None:
            if inner == "inside":
                inner_start, inner_end = start + 1, end - 1
            else:
                offset, length = inner
                inner_start = start + offset * US
                inner_end = start + max(offset, length) * US
            parent = {"outer": outer._context, "request": SERVER, "none": None}[parent_of]
            span: Any
            if outer_is == "foreign":  # Django's timer inside SQLAlchemy's span, say
                parent = parent or SERVER  # (a timer's span always has a parent)
                span = django_span(outer_id + 1, inner_start, inner_end - inner_start)
                span.parent = parent
                span.changes = [("update_name", ("x",), {})] if what == "renamed" else None
                span.error = ("OperationalError", "gone") if what == "failed" else None
            else:
                driver_attributes = {
                    "plain": {"http.request.method": "GET"},
                    "statement": {**DRIVER, "db.statement": "SELECT 2"},
                    "late": {},
                    "system": {"db.statement": "SELECT 3"},  # a database's span once set
                    "late_statement": {"db.system": "postgresql"},
                }.get(what, DRIVER)
                tracer = OTHER_TRACER if what == "other" else DRIVER_TRACER
                span = driver_span(
                    outer_id + 1,
                    parent,
                    inner_start,
                    inner_end - inner_start,
                    driver_attributes,
                    tracer,
                )
                if what == "failed":
                    span.error = ("OperationalError", "gone")
                span.changes = {
                    "changed": [("set_attribute", ("db.rows", 1), {})],
                    "listed": [("set_attribute", ("db.rows", [1, 2]), {})],
                    "renamed": [("update_name", ("SELECT 1",), {})],
                    # as dbapi's _populate_span: the database's attributes, then the
                    # connection's
                    "late": [
                        ("set_attributes", ({k: DRIVER[k] for k in list(DRIVER)[:3]},), {}),
                        *(("set_attribute", (k, DRIVER[k]), {}) for k in list(DRIVER)[3:]),
                    ],
                    "system": [("set_attributes", ({"db.system": "mysql"},), {})],
                    "late_statement": [("set_attribute", ("db.statement", "DELETE x"), {})],
                }.get(what)
            held = (inner_start, inner_end)
            # Its sibling, and the same query: the driver's text of SQLAlchemy's statement, in
            # another instrumentation's span; or any query in Django's "connect" (no statement).
            beside = parent_of == "request" and (
                (outer_is == "beside" and what in ("driver", "late", "changed"))
                or (outer_is == "connect" and what not in ("plain", "failed"))
            )
            if (
                (parent_of != "outer" and not beside)
                or what in ("listed", "renamed")
                or (outer_is != "foreign" and what in ("plain", "failed"))
            ):
                shapes = None
            spans.append(span)
        if outer_is == "app":
            shapes = None
        if shapes is not None:
            shapes.append((start, end, held))
        spans.append(outer)
    spans.sort(key=lambda span: span.end_time or span.start_time)  # in end order
    python = folded(closing.fold_timers(spans, request_start * US))  # (makes the tags)
    compiled = closing._COMPILED_FOLD
    assert compiled is not None
    with python_calls() as called:
        result = compiled(spans, request_start * US)
    assert folded(result) == python
    assert folded(compiled(tuple(spans), request_start * US)) == python
    if shapes is not None and _apart(shapes, request_start * US):
        assert called == [], "queries alone or each holding its own: folded in C alone"


def _apart(shapes: list[tuple[int, int, tuple[int, int] | None]], request_start: int) -> bool:
    """Whether the queries come one after another and each inner span is inside its query's,
    as the fold sees their times: from the request's start (0 for one that started before
    it), each lasting what it lasted."""

    def seen(start: int, end: int) -> tuple[int, int]:
        since = max(0, start - request_start)
        return since, since + (end - start)

    last_end = None
    for start, end, inner in shapes:
        since, until = seen(start, end)
        if last_end is not None and since <= last_end:
            return False
        if inner is not None:
            inner_since, inner_until = seen(*inner)
            if inner[1] > end:  # (ended after its query's: after it in the spans' order)
                return False
            if not (
                (inner_since > since or (inner_since == since and inner_until < until))
                and inner_until <= until
            ):
                return False
        last_end = until
    return True
