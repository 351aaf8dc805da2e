"""A timer's span ended by the app before its block ends (`span.end()`, ``with span:``): it
ends there, as the SDK's span does, whether or not otel_bridge builds it at the end
(otel_bridge._timer_spans). The spans exported, the SDK's warnings and the views' timers must
not depend on which."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

import otel_bridge
from tests.conftest import Harness, StartWatcher
from tests.test_server_span import PARENT
from tests.test_timer_spans import sdk_warnings, shape, timer_spans_made

# Each early end is followed by this much more time in the block: the span must not last it.
AFTER_END_S = 0.05
# What the app saw: is_recording() right after end().
seen: list[bool] = []


async def ended_early(scope: Any, receive: Any, send: Any) -> None:
    with otel_bridge.timer(group="early"):
        span = trace.get_current_span()
        span.end()
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
            pass
        time.sleep(AFTER_END_S)
    with otel_bridge.timer(group="from-a-thread"):
        # A thread that did not copy the request's context ends it.
        worker = threading.Thread(target=trace.get_current_span().end)
        worker.start()
        worker.join()
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
                again,  # ended from the thread
            ]
        ]
        * 2
    )
    assert len(made) == 7
    assert len(watcher.started) == 8  # the SDK harness made SDK spans: seven and the server's
    ours, theirs = deferred.finished_spans(), sdk.finished_spans()
    assert shape(ours) == shape(theirs)
    for spans in (ours, theirs):
        by_group = {(span.attributes or {}).get("group"): span for span in spans}
        assert dict(by_group["early"].attributes or {}) == {"group": "early"}
        assert dict(by_group["failing"].attributes or {}) == {"group": "failing"}
        assert by_group["failing"].status.status_code is StatusCode.UNSET
        handled = by_group["as-context-manager"]
        assert handled.status.status_code is StatusCode.ERROR
        assert handled.status.description == "KeyError: 'k'"
        assert [event.name for event in handled.events] == ["exception"]
        for group in ("early", "as-context-manager", "from-a-thread"):
            span = by_group[group]
            assert span.end_time is not None and span.start_time is not None
            assert span.end_time - span.start_time < AFTER_END_S * 1e9, group
    # The views see each timer end where its span ended, named and failed as it ended.
    for h in (deferred, sdk):
        timers = {timer.tags[0][1]: timer for timer in h.records()[0].timers}
        for group in ("early", "as-context-manager", "from-a-thread"):
            assert timers[group].duration_ns < AFTER_END_S * 1e9, group
        assert {group: (t.name, t.tags[1:], t.error_type) for group, t in timers.items()} == {
            "early": ("early", (), None),
            "failing": ("failing", (), None),  # ended before the exception
            "as-context-manager": ("as-context-manager", (), "error"),
            "from-a-thread": ("from-a-thread", (), None),
            "marked": ("renamed", (), "error"),
            "changed-failing": ("changed-failing", (("app.x", 1),), "ValueError"),
            "ok-first": ("ok-first", (("app.x", 1),), None),
        }
