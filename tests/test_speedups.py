"""The C core of a timer (otel_bridge._speedups): where it is built, timers run on it, and
what any view, processor or exporter sees is what the Python code makes.

`scripts/test` runs the timers' tests once more with the module hidden
(OTEL_BRIDGE_TEST_WITHOUT_C, tests/conftest.py): the Python code alone, as a machine without
a C compiler runs it."""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import os
import threading
from typing import Any

import pytest
from opentelemetry import trace

import otel_bridge
from otel_bridge import _compiled, _timer_spans
from otel_bridge._timer_spans import TIMER_SPAN_SLOTS, TimerSpan
from otel_bridge.timers import _PyTimerCore, query_timer
from tests.conftest import Harness, make_harness
from tests.test_server_span import PARENT
from tests.test_timer_spans import request, shape

WITHOUT_C = os.environ.get("OTEL_BRIDGE_TEST_WITHOUT_C") == "1"
MAX_TIMERS = 12


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


def served(h: Harness, pure_python: bool, made: list[TimerSpan]) -> Harness:
    settings = otel_bridge.Settings(exporters=(), max_timers=MAX_TIMERS, pure_python=pure_python)
    request(h.asgi(app, settings=settings), {"traceparent": PARENT})
    h.finished_spans()
    return h


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
    original = _timer_spans.export_timer_spans

    def keeping(spans: list[Any], timing: Any) -> None:
        kept.extend(span for span in spans if isinstance(span, TimerSpan))
        original(spans, timing)

    monkeypatch.setattr("otel_bridge.closing.export_timer_spans", keeping)
    initialised: list[str] = []
    init = TimerSpan.__init__

    def counting(self: TimerSpan, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        initialised.append(self.name)

    monkeypatch.setattr(TimerSpan, "__init__", counting)
    python = served(make_harness(), True, kept)
    python_spans = list(kept)
    by_python = list(initialised)
    kept.clear()
    initialised.clear()
    compiled = served(make_harness(), False, kept)
    compiled_spans = list(kept)
    try:
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

    monkeypatch.setattr(importlib, "import_module", lambda name: Stale)
    monkeypatch.setattr(_compiled, "state", _compiled._State())
    assert _compiled.compiled_core(_PyTimerCore) is _PyTimerCore
    assert _compiled.state.compiled is False
    assert "another source" in _compiled.state.reason
    assert "python hatch_build.py" in _compiled.state.reason

    def missing(name: str) -> Any:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", missing)
    assert _compiled.compiled_core(_PyTimerCore) is _PyTimerCore
    assert _compiled.state.reason == "not built (No module named 'otel_bridge._speedups')"
