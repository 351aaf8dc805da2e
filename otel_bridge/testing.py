"""Helpers for testing code that uses otel_bridge: collect records in memory.

collector = RecordCollector()
app = otel_bridge.instrument(app, record_exporters=[collector],
                             tracer_provider=TracerProvider(), meter_provider=MeterProvider())
... drive requests ...
app.bridge.force_flush()
assert collector.records[0].route == "/users/{uid}"
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from otel_bridge.record import RecordExporter, RequestRecord

__all__ = ["RecordCollector"]


class RecordCollector(RecordExporter):
    """Keeps every exported record (up to `limit`, oldest dropped first)."""

    name = "collector"
    in_memory = True

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def export(self, records: Sequence[RequestRecord]) -> None:
        with self._lock:
            self._records.extend(records)
            if len(self._records) > self._limit:
                del self._records[: len(self._records) - self._limit]

    @property
    def records(self) -> list[RequestRecord]:
        """A copy of the records collected so far, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
