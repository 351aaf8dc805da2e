"""The C core of a timer (otel_bridge._speedups): where it is built, timers run on it, and
what any view, processor or exporter sees is what the Python code makes.

`scripts/test` runs the timers' tests once more with the module hidden
(OTEL_BRIDGE_TEST_WITHOUT_C, tests/conftest.py): the Python code alone, as a machine without
a C compiler runs it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import importlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind

import otel_bridge
from otel_bridge import _compiled, closing
from otel_bridge._database import FIGURES, QueryCounts
from otel_bridge._timer_spans import TIMER_SPAN_SLOTS, TimerSpan
from otel_bridge.timers import _PyTimerCore, query_timer
from tests.conftest import Harness, make_harness
from tests.test_server_span import PARENT
from tests.test_timer_spans import request, shape

WITHOUT_C = os.environ.get("OTEL_BRIDGE_TEST_WITHOUT_C") == "1"
CONTEXT = SpanContext(1, 2, False)
MAX_TIMERS = 12
# A query's span as Django's integration makes it.
QUERY: dict[str, Any] = {
    "db.system.name": "postgresql",
    "db.namespace": "shop",
    "server.address": "localhost",
    "server.port": 5432,
    "db.operation.name": "SELECT",
    "db.query.text": 'SELECT "id" FROM "item" WHERE "id" = %s',
}
# An app's timer(group="db") that names its database system: a query, to the figures.
APP_QUERY = {"group": "db", "db.system.name": "redis", "db.statement": "GET k"}
_TEXTS = st.one_of(
    st.sampled_from(["SELECT", "select 1", " ( Insert into", "\u00a0update x", "x" * 16, "x" * 17]),
    st.sampled_from(["", "(", "1", "é", "vacuum;", "\u2003 (( delete"]),
    st.text(alphabet="sSeE (\t\u00a0\u3000;é1", max_size=8),
)
# Queries' spans of every shape the tags are made from: which attributes, of which types.
QUERIES = st.fixed_dictionaries(
    {"db.system.name": st.sampled_from(["postgresql", "sqlite"])},
    optional={
        "db.system": st.just("mysql"),
        "db.operation.name": _TEXTS | st.just(7),
        "db.operation": _TEXTS,
        "db.query.text": _TEXTS | st.just(("a",)),
        "db.statement": _TEXTS,
        "server.address": st.sampled_from(["", "localhost", "db"]) | st.just(5432),
        "net.peer.name": st.sampled_from(["", "peer"]),
    },
)


@otel_bridge.timer(group="cache", op="get")
def cached(key: str) -> str:
    return key.upper()


async def app(scope: Any, receive: Any, send: Any) -> None:
    # The second one's parent is the first one's span.
    with otel_bridge.timer(group="db", op="select"), otel_bridge.timer(name="inner", group="db"):
        pass
    with otel_bridge.timer(group="typed", n=3, on=True, many=["a", "b"]):  # not all strings
        pass
    with query_timer("SELECT", {"db.system.name": "sqlite", "db.query.text": "select 1"}):
        pass
    try:
        with otel_bridge.timer(group="failing"):
            raise KeyError("k")
    except KeyError:
        pass
    with otel_bridge.timer(group="ended"):
        trace.get_current_span().end()  # ended in its block
    with otel_bridge.timer(group="renamed"):
        trace.get_current_span().update_name("changed")
    cached("x")
    async with otel_bridge.timer(group="async"):
        await asyncio.sleep(0)
    worker = threading.Thread(target=contextvars.copy_context().run, args=(cached, "y"))
    worker.start()
    worker.join()
    for n in range(4):  # past OTEL_BRIDGE_MAX_TIMERS: counted, not kept
        with otel_bridge.timer(group="many", n=str(n)):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def served(h: Harness, pure_python: bool, ran: set[str]) -> Harness:
    """`h` after serving `app` once; `ran`: the Python functions of otel_bridge's timers and
    record that ran meanwhile."""
    settings = otel_bridge.Settings(exporters=(), max_timers=MAX_TIMERS, pure_python=pure_python)
    wrapped = h.asgi(app, settings=settings)

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename.endswith(WATCHED):
            ran.add(frame.f_code.co_name)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        request(wrapped, {"traceparent": PARENT})
        h.finished_spans()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return h


WATCHED = ("otel_bridge/timers.py", "otel_bridge/_timer_spans.py", "otel_bridge/closing.py")


@contextlib.contextmanager
def python_calls() -> Iterator[list[str]]:
    """The Python functions this thread calls inside the block: none where C did all of it
    (leaving the block calls this helper's own code, not counted). The cyclic collector is
    off inside the block: a collection could run anyone's `gc.callbacks` (hypothesis has one),
    and those are not the code under watch."""
    called: list[str] = []
    own = (__file__, contextlib.__file__)

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename not in own:
            called.append(frame.f_code.co_name)

    collecting = gc.isenabled()
    gc.disable()
    sys.setprofile(watch)
    try:
        yield called
    finally:
        sys.setprofile(None)
        if collecting:
            gc.enable()


def test_timers_have_the_c_core_where_it_is_built() -> None:
    from otel_bridge.timers import timer

    if WITHOUT_C:
        assert timer.__mro__[1] is _PyTimerCore
        assert _compiled.state.reason.startswith("not built")
        return
    # `make` builds it in place; a build that failed fails here, not silently slower.
    assert _compiled.state.compiled, _compiled.state.reason
    assert timer.__mro__[1].__module__ == "otel_bridge._speedups"


def test_the_c_core_records_and_exports_what_the_python_code_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept: list[TimerSpan] = []
    for name in ("export_timer_spans", "_COMPILED_CLOSE"):  # the Python code's, the C core's
        original = getattr(closing, name)

        def keeping(spans: list[Any], timing: Any, original: Any = original) -> None:
            kept.extend(span for span in spans if isinstance(span, TimerSpan))
            original(spans, timing)

        monkeypatch.setattr(closing, name, keeping)
    initialised: list[str] = []
    init = TimerSpan.__init__

    def counting(self: TimerSpan, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        initialised.append(self.name)

    monkeypatch.setattr(TimerSpan, "__init__", counting)
    in_python: set[str] = set()
    python = served(make_harness(), True, in_python)
    python_spans = list(kept)
    by_python = list(initialised)
    kept.clear()
    initialised.clear()
    in_c: set[str] = set()
    compiled = served(make_harness(), False, in_c)
    compiled_spans = list(kept)
    try:
        # The reference ran the Python code for every step (but a timer's __init__, a pure
        # function of its tags, compared below), the other run only where C does not go.
        steps = {"__enter__", "__exit__", "start_timer", "finish_timer", "fold_timers"}
        assert steps <= in_python
        if not WITHOUT_C:
            assert in_c.isdisjoint({"__enter__", "start_timer"})
        assert len(python_spans) == MAX_TIMERS
        assert len(by_python) == MAX_TIMERS + 2
        if WITHOUT_C:
            assert initialised == by_python
        else:
            # Every timer of the request entered and left on the C core (a typed one's tags are
            # flattened in Python first), which fills the span's slots itself.
            assert initialised == []
        # What the views get.
        [ours], [theirs] = python.records(), compiled.records()
        assert [_timer(t) for t in theirs.timers] == [_timer(t) for t in ours.timers]
        assert theirs.timers_dropped == ours.timers_dropped == 2
        assert _counts(theirs.fields) == _counts(ours.fields)
        assert _counts(theirs.fields)[".db.query_count"] == 1
        # What the processors get.
        assert shape(compiled.finished_spans()) == shape(python.finished_spans())
        # Each span as the Python code fills it, slot by slot (ids and instants aside).
        assert set(TIMER_SPAN_SLOTS) == set(TimerSpan.__slots__)
        for made_by_c, made_by_python in zip(compiled_spans, python_spans, strict=True):
            for slot in TIMER_SPAN_SLOTS:
                if slot in ("_context", "parent", "start_time", "end_time", "exporters"):
                    continue
                assert getattr(made_by_c, slot) == getattr(made_by_python, slot), slot
            assert type(made_by_c._context) is type(made_by_python._context)
            assert made_by_c._context[2:] == made_by_python._context[2:]
            assert made_by_c.end_time is not None
            assert made_by_c.end_time >= made_by_c.start_time
    finally:
        for h in (python, compiled):
            for wrapped in h.apps:
                wrapped.bridge.shutdown()
            h.tracer_provider.shutdown()


def _counts(fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if not name.endswith("_ms")}


def _timer(timer: Any) -> tuple[Any, ...]:
    return (timer.name, timer.kind, timer.tags, timer.error_type, timer.hit_count)


def test_debug_vars_say_what_times_the_timers() -> None:
    h = make_harness()
    try:
        cores = []
        for settings in (
            otel_bridge.Settings(exporters=()),
            otel_bridge.Settings(exporters=(), pure_python=True),
            otel_bridge.Settings(exporters=(), timer_cpu=True),
        ):
            wrapped = h.asgi(app, settings=settings)
            request(wrapped, {})
            cores.append(wrapped.bridge.timer_core())
        if WITHOUT_C:
            assert cores[:2] == [f"python (the C core is {_compiled.state.reason})"] * 2
        else:
            assert cores[:2] == ["c", "python (OTEL_BRIDGE_PURE_PYTHON)"]
            assert cores[2] == "python (OTEL_BRIDGE_TIMER_CPU)"
    finally:
        for wrapped in h.apps:
            wrapped.bridge.shutdown()


def test_a_module_from_another_source_is_left_unused(monkeypatch: pytest.MonkeyPatch) -> None:
    class Stale:
        VERSION = _compiled.EXPECTED_VERSION - 1

        @staticmethod
        def setup(**refs: Any) -> None:
            raise AssertionError("a stale module is not set up")

    monkeypatch.setattr(_compiled, "state", _compiled._State())
    monkeypatch.setattr(importlib, "import_module", lambda name: Stale)
    assert _compiled.compiled_core(_PyTimerCore) is _PyTimerCore
    assert _compiled.state.compiled is False
    assert "another source" in _compiled.state.reason
    assert "python hatch_build.py" in _compiled.state.reason

    def missing(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert _compiled.load() is None
    assert _compiled.compiled_core(_PyTimerCore) is _PyTimerCore
    assert _compiled.state.reason == "not built (No module named 'otel_bridge._speedups')"


KINDS = ["db", "http", "custom", "cache", "rpc", "a", "b", "c", "d", 'ü"kind']


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.one_of(
                st.integers(0, 10**10),
                st.integers(2**53 - 10, 2**53 + 10),
                st.integers(-(10**6), 10**21),
                st.sampled_from([500, 1_500, 2_500, 1_000_500, 999_999_500]),
            ),
            st.integers(0, 10**6) | st.just(2**63),
        ),
        max_size=12,
    ),
    st.integers(0, 10**6),
)
def test_the_wide_events_timer_summary_in_c_is_the_pythons(
    timers: list[tuple[str, int, int]], dropped: int
) -> None:
    from benchmarks.pinba import sample_record
    from otel_bridge.exporters.wide_events import _event
    from otel_bridge.record import Timer

    record = sample_record()._replace(
        timers=tuple(
            Timer("t", kind, (), 0, duration, 0, 0, None, hits) for kind, duration, hits in timers
        ),
        timers_dropped=dropped,
    )
    compiled = _event._COMPILED_TIMERS_TEXT
    assert compiled is not None
    assert _event.EventBuilder()._timers_text is compiled
    assert _event.EventBuilder(compiled=False)._timers_text is _event._timers_text
    python = _event._timers_text(record)  # (keeps each kind's keys, which the C code reads)
    assert compiled(record) == python


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    {"group": "db", "op": "select"},
                    {"group": "cache"},
                    {},
                    {"group": "x", "n": 3, "many": ("a", "b")},
                    {"group": "bad", "error.type": "E"},  # (the Python code's)
                    {"listed": ["a"]},  # unhashable: the Python code's
                    {"db.system.name": "sqlite", "db.query.text": "select 1"},
                    {"group": "db"},  # an app's database timer: holds a query's
                    QUERY,
                ]
            )
            | QUERIES,
            st.sampled_from([SpanKind.INTERNAL, SpanKind.CLIENT]),
            # start, from the request's: far apart, close (touching, nested) or before it
            st.one_of(st.integers(-(10**9), 10**12), st.integers(0, 40)),
            st.one_of(st.none(), st.integers(-(10**9), 10**12), st.integers(0, 40)),  # duration
            st.one_of(st.none(), st.tuples(st.just("KeyError"), st.just("'k'"))),
            st.booleans(),  # changed by the app
            st.sampled_from(["timer", "SELECT shop", "  (insert", "", "x" * 17]),  # name
            st.integers(1, 3),  # the parent: the request, or a span before it
        ),
        max_size=6,
    ),
    st.integers(1_600_000_000 * 10**9, 1_800_000_000 * 10**9),
)
def test_a_requests_timers_folded_in_c_are_the_pythons(
    spans: list[tuple[Any, ...]], request_start: int
) -> None:

    made: list[TimerSpan] = []
    for attributes, kind, offset, duration, error, changed, name, parent in spans:
        start = request_start + offset
        context = SpanContext(1, len(made) + 3, False)
        span = TimerSpan(context, name, SpanContext(1, parent, False), attributes, (), start, kind)
        span.end_time = None if duration is None else start + duration
        span.error = error
        if changed:
            span.changes = [("update_name", ("renamed",), {})]
        span.closed = True
        made.append(span)
    compiled = closing._COMPILED_FOLD
    assert compiled is not None
    python = _folded(closing.fold_timers(made, request_start))  # (keeps each tag set)
    assert _folded(compiled(made, request_start)) == python
    assert _folded(compiled(tuple(made), request_start)) == python


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([QUERY, {"group": "db"}, {"group": "cache"}, APP_QUERY]) | QUERIES,
            st.integers(0, 30),  # after the last one started
            st.integers(0, 30),  # duration
            st.one_of(st.none(), st.tuples(st.just("OperationalError"), st.just("gone"))),
            st.integers(1, 3),  # the parent: the request, or a span before it
        ),
        max_size=8,
    ),
)
def test_a_requests_queries_folded_in_c_are_the_pythons(spans: list[tuple[Any, ...]]) -> None:
    """Django's queries in a row (the usual request: C), nested, touching, or held by an app's
    timer(group="db") (the Python code decides which one stands), and their figures."""

    made: list[TimerSpan] = []
    start = 1_700_000_000 * 10**9
    for attributes, gap, duration, error, parent in spans:
        start += gap
        database = "db.system.name" in attributes and "group" not in attributes
        kind = SpanKind.CLIENT if database else SpanKind.INTERNAL
        context = SpanContext(1, len(made) + 3, False)
        span = TimerSpan(
            context, "SELECT shop", SpanContext(1, parent, False), attributes, (), start, kind
        )
        span.end_time, span.error, span.closed = start + duration, error, True
        made.append(span)
    made.sort(key=lambda span: span.end_time or 0)  # in end order, as a request holds them
    compiled = closing._COMPILED_FOLD
    assert compiled is not None
    python = _folded(closing.fold_timers(made, start - 100))  # (keeps each tag set)
    assert _folded(compiled(made, start - 100)) == python


def _folded(folded: Any) -> tuple[Any, ...]:
    timers, counts = folded
    if counts is None:
        return timers, None
    return timers, counts.fields(0, 0), counts.seen


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
def test_the_usual_requests_timers_and_summary_are_made_in_c_alone() -> None:
    from benchmarks.pinba import sample_record
    from otel_bridge.exporters.wide_events import _event

    span = TimerSpan(CONTEXT, "db select", CONTEXT, {"group": "db", "op": "select"}, (), 5)
    span.end_time, span.closed = 9, True
    timers, counts = closing.fold_timers([span], 1)  # the Python code keeps the tags
    record = sample_record()._replace(timers=timers, timers_dropped=0)
    summary = _event._timers_text(record)  # … and the kind's keys
    assert closing._COMPILED_FOLD is not None and _event._COMPILED_TIMERS_TEXT is not None
    with python_calls() as called:
        folded = closing._COMPILED_FOLD([span], 1)
        text = _event._COMPILED_TIMERS_TEXT(record)
    assert (
        folded
        == (timers, counts)
        == ((("db select", "db", (("group", "db"), ("op", "select")), 4, 4, 0, 0, None, 1),), None)
    )
    assert type(folded[0][0]) is type(timers[0])
    assert text == summary == ',"timers.count":1,"timers.db.count":1,"timers.db.ms":0.0'
    assert called == []  # no Python code ran


@pytest.mark.parametrize(
    "tags",
    [
        {"group": "db", "op": "select"},
        {"name": "named", "group": "db"},
        {},
        {"group": ""},
        {"a": "", "b": ""},
        {"n": 3, "on": True, "none": None, "many": ["a", "b"], "nested": {"x": "y"}},
        {"name": 7},
    ],
)
def test_a_timers_tags_and_name_are_the_pythons(tags: dict[str, Any]) -> None:
    from otel_bridge.timers import timer

    made = timer(**tags)
    reference = timer.__new__(timer)
    _PyTimerCore.__init__(reference, **tags)
    for field in ("_attributes", "_name", "_kind", "_span", "_token", "_builder"):
        assert getattr(made, field) == getattr(reference, field), field
    if tags:
        assert made._attributes is not tags  # a dict of its own, as **tags is


def test_a_timers_exit_takes_what_pythons_takes() -> None:
    from otel_bridge.timers import timer

    made = timer(group="x")
    made.__enter__()
    made.__exit__(exc=None, tb=None, exc_type=None)  # type: ignore[call-arg]  # (Python takes keywords)
    assert made._span is None
    made.__enter__()
    with pytest.raises(TypeError):
        made.__exit__(None, None, None, None)  # type: ignore[call-arg]
    made.__exit__(None, None, None)
    fresh = timer.__new__(timer)
    with pytest.raises(AttributeError):
        fresh.__enter__()  # never initialised: as an unset slot


class _ClosingError(Exception):
    """Its text closes the request: Python code between a timer's end and its record."""

    def __str__(self) -> str:
        from otel_bridge.builder import current

        builder = current.get()
        assert builder is not None
        builder.closed = True
        return "closing"


async def closing_app(scope: Any, receive: Any, send: Any) -> None:
    from otel_bridge.builder import current

    try:
        with otel_bridge.timer(group="late"):
            raise _ClosingError
    except _ClosingError:
        pass
    builder = current.get()
    assert builder is not None
    builder.closed = False
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("pure_python", [True, False], ids=["python", "c"])
def test_a_request_closed_while_its_timer_ends_gets_no_timer(pure_python: bool) -> None:
    h = make_harness()
    try:
        wrapped = h.asgi(
            closing_app, settings=otel_bridge.Settings(exporters=(), pure_python=pure_python)
        )
        request(wrapped, {})
        [record] = h.records()
        assert record.timers == ()
        assert wrapped.bridge.health.snapshot()["dropped"] == {"timer_after_request": 1}
        assert [span.name for span in h.finished_spans()] == ["late", "GET"]
    finally:
        for wrapped in h.apps:
            wrapped.bridge.shutdown()


def test_the_module_without_its_setup_raises_instead_of_crashing(tmp_path: Any) -> None:
    import subprocess

    if WITHOUT_C:
        pytest.skip("the C core is hidden")
    found = _compiled.state.module
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('_speedups', {found.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "core = module.TimerCore\n"
        "for call in (core, lambda: core.__new__(core).__enter__()):\n"
        "    try:\n"
        "        call()\n"
        "    except RuntimeError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["otel_bridge._speedups.setup() has not run"] * 2


_NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.integers(0, 10**7),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([*FIGURES, "app.note", ".db.other"]), _NUMBERS | _NUMBERS, max_size=4
    )
)
def test_the_events_database_figures_written_in_c_are_the_pythons(fields: dict[str, Any]) -> None:
    from otel_bridge.exporters.wide_events import _event

    compiled = _event._COMPILED_FIGURES_TEXT
    assert compiled is not None
    python = _event._figures_text(fields)
    assert compiled(MappingProxyType(fields)) == compiled(fields) == python
    if python is not None and fields:
        assert json.loads("{" + python[1:] + "}") == {name[1:]: fields[name] for name in fields}


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
@settings(max_examples=300, deadline=None)
@given(
    st.tuples(*[st.integers(0, 10**6) | st.integers(-(2**64), 2**64)] * 3),
    st.integers(0, 10**6) | st.integers(-(2**64), 2**64),
    st.integers(0, 10**15) | st.integers(2**53 - 10, 2**53 + 10),
)
def test_a_requests_database_figures_made_in_c_are_the_pythons(
    counted: tuple[int, int, int], dropped: int, dropped_ns: int
) -> None:
    from otel_bridge._database import QueryCounts

    counts = QueryCounts()
    counts.count, counts.duplicates, counts.nanoseconds = counted
    python = QueryCounts.fields(counts, dropped, dropped_ns)
    compiled = closing._COMPILED_FIELDS(counts, dropped, dropped_ns)
    assert [(name, repr(value)) for name, value in compiled.items()] == [
        (name, repr(value)) for name, value in python.items()
    ]


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
def test_the_usual_requests_queries_and_figures_are_made_in_c_alone() -> None:
    """Django's queries in a row, an N+1: their timers, the request's database figures and
    the event's text of them, with no Python code run."""
    from otel_bridge.exporters.wide_events import _event

    spans = []
    for n in range(3):
        span = TimerSpan(
            SpanContext(1, 10 + n, False),
            "SELECT shop",
            CONTEXT,
            QUERY,
            (),
            100 * n + 5,
            SpanKind.CLIENT,
        )
        span.end_time, span.closed = 100 * n + 55, True
        spans.append(span)
    timers, counts = closing.fold_timers(spans, 1)  # the Python code keeps the tags
    assert counts is not None
    python = QueryCounts.fields(counts, 0, 0)
    assert closing._COMPILED_FOLD is not None and _event._COMPILED_FIGURES_TEXT is not None
    with python_calls() as called:
        folded = closing._COMPILED_FOLD(spans, 1)
        figures = closing._COMPILED_FIELDS(folded[1] or counts, 0, 0)
        text = _event._COMPILED_FIGURES_TEXT(MappingProxyType(figures))
    assert called == []  # no Python code ran
    assert type(folded[1]) is QueryCounts and folded[1].seen == counts.seen
    tags = (("group", "db"), ("op", "select"), ("server", "localhost"))
    assert (
        folded[0]
        == timers
        == tuple(("SELECT shop", "db", tags, 100 * n + 4, 50, 0, 0, None, 1) for n in range(3))
    )
    assert (
        figures
        == python
        == {
            ".db.query_count": 3,
            ".db.query_ms": 0.0,
            ".db.duplicate_queries": 2,
        }
    )
    assert text == ',"db.query_count":3,"db.query_ms":0.0,"db.duplicate_queries":2'


_PINBA_TAGS = st.sampled_from(
    [
        (("group", "db"), ("op", "select")),
        (("op", "select"), ("group", "db")),  # the same Pinba tags once sorted: merged
        (("group", "db"), ("op", "select"), ("server", "localhost")),
        (("group", "x"), ("many", ("a", "b")), ("n", 3), ("on", True)),
        (),
    ]
)


@pytest.mark.skipif(WITHOUT_C, reason="the C core is hidden")
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            _PINBA_TAGS,
            st.integers(-5, 50),  # start: ties keep their order
            st.integers(0, 10**7) | st.integers(-5, 5) | st.integers(2**62, 2**64),  # duration
            st.integers(0, 3) | st.integers(120, 2**33) | st.integers(-1, 0),  # hits
            st.sampled_from([0, 999, 1000, 12_345_678]),  # user CPU
            st.sampled_from([0, 1000, 7_000]),  # system CPU
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([65507, 220]),  # the packet's bound: trimmed by the Python code
)
def test_pinba_packets_with_timers_made_in_c_are_the_pythons(
    timers: list[tuple[Any, ...]], max_packet_size: int
) -> None:
    from benchmarks.pinba import sample_record
    from otel_bridge.exporters.pinba import PinbaExporter
    from otel_bridge.record import Timer

    record = sample_record()._replace(
        timers=tuple(
            Timer("t", "db", tags, start, duration, utime, stime, None, hits)
            for tags, start, duration, hits, utime, stime in timers
        ),
        timers_dropped=0,
    )
    packets = []
    for compiled in (False, True):
        exporter = PinbaExporter(
            [("127.0.0.1", 9)], hostname="h", max_packet_size=max_packet_size, compiled=compiled
        )
        exporter._footprint = lambda: 4096  # type: ignore[assignment]
        try:
            first = exporter.packet(record)  # (the Python code keeps the tags)
            packets.append((first, exporter.packet(record)))
            parts = exporter._compiled_timers
            made = parts(record.timers, exporter._tag_cache) if parts is not None else None
        finally:
            exporter.shutdown()
    assert packets[1] == packets[0]
    plain = all(0 <= d < 2**63 and h >= 0 for _, _, d, h, _, _ in timers)
    assert (made is not None) == plain, "C makes every timer part but negative or huge ones"


def test_a_query_timer_made_in_c_is_the_one_its_init_makes() -> None:
    from otel_bridge.timers import new_query_timer

    if WITHOUT_C:
        assert new_query_timer is query_timer
        return
    attributes = dict(QUERY)
    made, reference = new_query_timer("SELECT shop", attributes), query_timer("SELECT", {})
    query_timer.__init__(reference, "SELECT shop", attributes)
    assert type(made) is query_timer
    for field in ("_attributes", "_name", "_kind", "_span", "_token", "_builder"):
        assert getattr(made, field) == getattr(reference, field), field
    assert made._attributes is attributes and made._kind is SpanKind.CLIENT
    with pytest.raises(TypeError):
        new_query_timer("SELECT shop")  # type: ignore[call-arg]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["group", "op", "name", "a", "b", "c"]),
        st.text(alphabet=st.sampled_from(["a", " ", "é", "ÿ", "Ā", "日", "😀"]), max_size=4),
        max_size=5,
    )
)
def test_a_timers_string_tags_and_name_are_the_pythons(tags: dict[str, str]) -> None:
    """Every width of str (ASCII, Latin-1, two and four bytes a character), empty ones."""
    from otel_bridge.timers import timer

    reference = timer.__new__(timer)
    _PyTimerCore.__init__(reference, **tags)
    for made in (timer(**tags), timer(**dict(tags))):  # (the second: a dict only the call holds)
        assert made._name == reference._name and made._attributes == reference._attributes
        assert made._attributes is not tags
        # Written at the narrowest width, as Python's own strs are: a str of another width
        # compares and hashes unequal, whatever its characters.
        assert hash(made._name) == hash(reference._name)
