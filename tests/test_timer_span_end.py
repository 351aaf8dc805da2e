"""A timer's span ended by the app before its block ends (`span.end()`, ``with span:``): it
ends there, as the SDK's span does, whether or not otel_bridge builds it at the end
(otel_bridge._timer_spans). The spans exported, the SDK's warnings and the views' timers must
not depend on which."""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import otel_bridge
from otel_bridge import _timer_spans
from tests.conftest import Harness, StartWatcher
from tests.test_server_span import PARENT
from tests.test_timer_spans import request, sdk_warnings, shape, timer_spans_made

# Each early end is followed by this much more time in the block: the span must not last it.
AFTER_END_S = 0.02
# What the app saw: is_recording() right after end().
seen: list[bool] = []
# For each request, the wall clock right after each early end, by group: the span and the
# timer end by then.
ended_by: list[dict[str, int]] = []
ENDED_EARLY = ("early", "as-context-manager", "from-a-thread", "from-a-copied-context")


async def ended_early(scope: Any, receive: Any, send: Any) -> None:
    stamps: dict[str, int] = {}
    ended_by.append(stamps)
    with otel_bridge.timer(group="early"):
        span = trace.get_current_span()
        span.end()
        stamps["early"] = time.time_ns()
        seen.append(span.is_recording())
        span.set_attribute("app.after", 1)
        span.add_link(trace.INVALID_SPAN_CONTEXT)  # invalid: dropped without a word
        time.sleep(AFTER_END_S)
    try:
        with otel_bridge.timer(group="failing"):
            trace.get_current_span().end()
            raise LookupError("after its end")
    except LookupError:
        pass
    with otel_bridge.timer(group="as-context-manager"):
        try:
            with trace.get_current_span():
                raise KeyError("k")
        except KeyError:
            stamps["as-context-manager"] = time.time_ns()
        time.sleep(AFTER_END_S)
    with otel_bridge.timer(group="from-a-thread"):
        # A thread that did not copy the request's context ends it.
        worker = threading.Thread(target=trace.get_current_span().end)
        worker.start()
        worker.join()
        stamps["from-a-thread"] = time.time_ns()
        time.sleep(AFTER_END_S)
        with otel_bridge.timer(group="inside"):  # ends after it, though inside its block
            pass
    with otel_bridge.timer(group="from-a-copied-context"):
        worker = threading.Thread(
            target=contextvars.copy_context().run, args=(trace.get_current_span().end,)
        )
        worker.start()
        worker.join()
        stamps["from-a-copied-context"] = time.time_ns()
        time.sleep(AFTER_END_S)
    # Changed in its block, not ended early: its timer is what its SDK span ended as.
    with otel_bridge.timer(group="marked"):
        trace.get_current_span().set_status(Status(StatusCode.ERROR, "bad"))
        trace.get_current_span().update_name("renamed")
    for status, group in ((StatusCode.UNSET, "changed-failing"), (StatusCode.OK, "ok-first")):
        try:
            with otel_bridge.timer(group=group):
                trace.get_current_span().set_attribute("app.x", 1)
                trace.get_current_span().set_status(Status(status))  # an OK stays
                raise ValueError("v")
        except ValueError:
            pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_timer_span_ended_in_its_block_ends_there_as_the_sdks(
    pair: tuple[Harness, Harness, StartWatcher],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    deferred, sdk, watcher = pair
    made = timer_spans_made(monkeypatch)
    seen.clear()
    ended_by.clear()
    logged = sdk_warnings((deferred, sdk), ended_early, PARENT, caplog)
    assert seen == [False, False]
    again = "Calling end() on an ended span."
    assert (
        logged
        == [
            [
                "Setting attribute on ended span.",
                again,  # the block's end, after the app's
                # The timer marks the error on a span the app already ended, then ends it again.
                "Setting attribute on ended span.",
                "Tried calling set_status on an ended span.",
                again,
                again,  # `with span:` ended it
                again,  # ended from a thread
                again,  # ended from a thread with the request's context
            ]
        ]
        * 2
    )
    ours, theirs = deferred.finished_spans(), sdk.finished_spans()
    assert len(made) == 9  # (counted as the request is exported)
    assert len(watcher.started) == 10  # the SDK harness made SDK spans: nine and the server's
    # In the same order too: each span when it ended ("from-a-thread" before "inside").
    assert shape(ours) == shape(theirs)
    for spans, stamps in zip((ours, theirs), ended_by, strict=True):
        groups = [(span.attributes or {}).get("group") for span in spans]
        assert groups.index("from-a-thread") < groups.index("inside")
        by_group = dict(zip(groups, spans, strict=True))
        assert dict(by_group["early"].attributes or {}) == {"group": "early"}
        assert dict(by_group["failing"].attributes or {}) == {"group": "failing"}
        assert by_group["failing"].status.status_code is StatusCode.UNSET
        handled = by_group["as-context-manager"]
        assert handled.status.status_code is StatusCode.ERROR
        assert handled.status.description == "KeyError: 'k'"
        assert [event.name for event in handled.events] == ["exception"]
        for group in ENDED_EARLY:
            end = by_group[group].end_time
            assert end is not None and end <= stamps[group], group
    # The views see each timer once, ending where its span ended, named and failed as it did.
    for h, stamps in zip((deferred, sdk), ended_by, strict=True):
        record = h.records()[0]
        assert len(record.timers) == 9
        timers = {timer.tags[0][1]: timer for timer in record.timers}
        assert list(timers).index("from-a-thread") < list(timers).index("inside")
        for group in ENDED_EARLY:
            timer = timers[group]
            assert record.start_time_ns + timer.start_ns + timer.duration_ns <= stamps[group]
        assert {group: (t.name, t.tags[1:], t.error_type) for group, t in timers.items()} == {
            "early": ("early", (), None),
            "failing": ("failing", (), None),  # ended before the exception
            "as-context-manager": ("as-context-manager", (), "error"),
            "from-a-thread": ("from-a-thread", (), None),
            "inside": ("inside", (), None),
            "from-a-copied-context": ("from-a-copied-context", (), None),
            "marked": ("renamed", (), "error"),
            "changed-failing": ("changed-failing", (("app.x", 1),), "ValueError"),
            "ok-first": ("ok-first", (("app.x", 1),), None),
        }


async def finished_twice(scope: Any, receive: Any, send: Any) -> None:
    # What a race leaves: the block's end and end() from another thread both saw the span
    # running, and both finish it.
    with otel_bridge.timer(group="raced") as timer:
        span = trace.get_current_span()
        builder = timer._builder
        _timer_spans.finish_timer(builder, span, None)  # type: ignore[arg-type]
        _timer_spans.finish_timer(builder, span, None)  # type: ignore[arg-type]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_a_timer_span_finished_twice_is_recorded_and_exported_once(harness: Harness) -> None:
    request(harness.asgi(finished_twice))
    [record] = harness.records()
    assert [timer.tags for timer in record.timers] == [(("group", "raced"),)]
    assert [span.name for span in harness.finished_spans()] == ["raced", "GET"]
