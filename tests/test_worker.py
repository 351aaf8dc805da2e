"""The export thread's queue (otel_bridge._worker): when it wakes."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from otel_bridge import _worker
from otel_bridge._health import Health
from otel_bridge._worker import Worker


@pytest.mark.parametrize("weight", [0, 200])
def test_requests_holding_many_spans_wake_the_thread_before_its_interval(
    monkeypatch: pytest.MonkeyPatch, weight: int
) -> None:
    # Three requests are far fewer than WAKE_AT; with 200 child spans each they hold more
    # than WAKE_WEIGHT, and are handled at once rather than at the next interval.
    monkeypatch.setattr(_worker, "INTERVAL_S", 30.0)
    handled = threading.Event()

    def handle(batch: Sequence[int]) -> None:
        handled.set()

    worker: Worker[int] = Worker(handle, maxsize=100, health=Health(), name="test-worker")
    try:
        for item in range(3):
            assert worker.submit(item, weight)
        assert handled.wait(2.0) is (3 * weight >= _worker.WAKE_WEIGHT)
    finally:
        worker.stop(5.0)
    assert handled.is_set(), "stop() drains what waits"
