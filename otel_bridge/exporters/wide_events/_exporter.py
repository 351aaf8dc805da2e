"""`WideEventsExporter`: one event per RequestRecord, sampled, scrubbed, formatted, written —
all on the bridge's exporter thread; the request path pays nothing for it."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from otel_bridge._health import Health
from otel_bridge._scoreboard import current
from otel_bridge.config import Settings
from otel_bridge.exporters.wide_events._event import EventBuilder
from otel_bridge.exporters.wide_events._sinks import Sink, format_json, make_sink
from otel_bridge.record import RecordExporter, RequestRecord

__all__ = ["WideEventsExporter"]

Event = dict[str, Any]
Scrub = Callable[[Event], Event | None]


def _server_fields() -> dict[str, Any]:
    """Sibling data from the gunicorn scoreboard: this worker's slot and the server's load."""
    claim = current()
    if claim is None:
        return {}
    board, slot = claim
    state = board.read()
    workers = state["workers"]
    fields = {
        "worker.slot": slot,
        "server.workers": len(workers),
        "server.workers_busy": sum(1 for worker in workers if worker["busy"]),
    }
    if "listen_backlog" in state:  # known only once the master's monitor sampled it
        fields["server.listen_backlog"] = state["listen_backlog"]
    return fields


class WideEventsExporter(RecordExporter):
    """Writes one wide event per request.

    Args:
        sink: where events go (`make_sink`).
        builder: record → event.
        sample_rate: keep 1 in N ordinary requests (deterministically by request id); errors,
            5xx and requests slower than `slow_ms` are always kept. Events kept by sampling
            carry `sample_rate` (the number of requests each stands for); always-kept ones do
            not.
        slow_ms: the "slow request" threshold.
        scrub: called with each event before it is written; return it (changed or not), or
            None to drop it. A scrub that raises drops the event (counted), never the request.
    """

    name = "wide_events"

    def __init__(
        self,
        sink: Sink,
        *,
        builder: EventBuilder | None = None,
        sample_rate: int = 1,
        slow_ms: float = 1000.0,
        scrub: Scrub | None = None,
    ) -> None:
        self.sink = sink
        self.builder = builder or EventBuilder()
        self.sample_rate = max(1, sample_rate)
        self.slow_ms = slow_ms
        self.scrub = scrub
        self.health = Health()
        # What counts failures of its own (the otlp sink's log exporter): into the bridge's
        # health once attached.
        self.counted: list[Any] = []
        self._lock = threading.Lock()  # the exporter thread and the watchdog both write

    def attach(self, health: Health) -> None:
        self.health = health
        for counted in self.counted:
            counted.health = health

    @classmethod
    def from_settings(
        cls, settings: Settings, scrub: Scrub | None = None, logger_provider: Any = None
    ) -> WideEventsExporter:
        """Build from `OTEL_EXPORTER_WIDE_EVENTS_*` (already validated by `Settings`);
        `logger_provider` for the `otlp` sink (default: the process's)."""
        return cls(
            make_sink(settings.wide_events_sink, settings.wide_events_format, logger_provider),
            builder=EventBuilder(
                request_id_header=settings.wide_events_request_id_header,
                secret_params=settings.wide_events_redact_params,
                trust_forwarded_for=settings.wide_events_trust_forwarded_for,
                compiled=not settings.pure_python,
            ),
            sample_rate=settings.wide_events_sample_rate,
            slow_ms=settings.wide_events_slow_ms,
            scrub=scrub,
        )

    def timeout_event(
        self, record: RequestRecord, open_spans: list[dict[str, Any]], stack: str
    ) -> None:
        """Write a `timeout` event now, from the watchdog thread (never sampled out)."""
        event = self.builder.build(record, kind="timeout")
        event.update(_server_fields())
        event["open_spans"] = json.dumps(open_spans, ensure_ascii=False)
        event["stack"] = stack
        if self.scrub is not None:
            scrubbed = self.scrub(event)
            if scrubbed is None:
                return
            event = scrubbed
        with self._lock:
            self.sink.write([event])
        self.health.count("wide_events.timeouts")

    def loop_blocked_event(self, info: dict[str, Any]) -> None:
        """The event loop ran nothing for a while: say where it is stuck and who waits."""
        now = datetime.datetime.now(datetime.UTC)
        event: Event = {
            "timestamp": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "event": "loop_blocked",
            "process.pid": os.getpid(),
            "blocked_ms": info["blocked_ms"],
            "inflight": json.dumps(info["inflight"], ensure_ascii=False),
            "inflight.count": len(info["inflight"]),
            "stack": info["stack"],
            **_server_fields(),
        }
        with self._lock:
            self.sink.write([event])
        self.health.count("wide_events.loop_blocked")

    def keep(self, record: RequestRecord, event: Mapping[str, Any]) -> int | None:
        """The event's weight if it is kept (1: always kept; `sample_rate`: one kept for that
        many ordinary requests), None if it is sampled out."""
        if self.sample_rate == 1:
            return 1
        if record.error_type is not None or record.status >= 500:
            return 1
        if event.get("duration_ms", 0) >= self.slow_ms:
            return 1
        digest = hashlib.blake2b(str(event["request.id"]).encode(), digest_size=8).digest()
        return self.sample_rate if int.from_bytes(digest, "big") % self.sample_rate == 0 else None

    def export(self, records: Sequence[RequestRecord]) -> None:
        if self.scrub is None and self.sample_rate == 1 and self.sink.json_lines:
            self._export_lines(records)
            return
        events: list[Event] = []
        for record in self._requests(records):
            try:
                event = self.builder.build(record)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the rest
                self.health.error("exporter.wide_events.build", exc)
                continue
            weight = self.keep(record, event)
            if weight is None:
                self.health.count("wide_events.sampled_out")
                continue
            if weight > 1:
                # Stands for `weight` requests; always-kept events (errors, slow) stand for one.
                event["sample_rate"] = weight
            if self.scrub is not None:
                try:
                    scrubbed = self.scrub(event)
                except Exception as exc:  # noqa: BLE001
                    self.health.error("exporter.wide_events.scrub", exc)
                    continue
                if scrubbed is None:
                    self.health.count("wide_events.scrubbed_out")
                    continue
                event = scrubbed
            events.append(event)
        if not events:
            return
        server = _server_fields()
        if server:
            for event in events:
                event.update(server)
        self._write(self.sink.write, events)

    def _requests(self, records: Sequence[RequestRecord]) -> Iterator[RequestRecord]:
        for record in records:
            if record.interface == "job":
                continue
            if record.timed_out:
                # Its `timeout` event is written: exactly one event per request.
                self.health.count("wide_events.completed_after_timeout")
                continue
            yield record

    def _write(self, write: Callable[[list[Any]], None], items: list[Any]) -> None:
        try:
            with self._lock:
                write(items)
        except Exception as exc:  # noqa: BLE001 - EPIPE, ENOSPC, a logging handler's bug…
            self.health.error("exporter.wide_events.sink", exc)
            self.health.drop("wide_events.sink_failed", len(items))
            return
        self.health.count("wide_events.written", len(items))

    def _export_lines(self, records: Sequence[RequestRecord]) -> None:
        """`export()` for a JSON Lines sink when every event is kept as built: the lines are
        written straight from the records (`EventBuilder.line()`), the same bytes."""
        lines: list[str] = []
        for record in self._requests(records):
            try:
                lines.append(self.builder.line(record))
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the rest
                self.health.error("exporter.wide_events.build", exc)
        if not lines:
            return
        server = _server_fields()
        if server:
            # Last in every event, as `event.update(server)` puts them.
            tail = "," + format_json(server)[1:]
            lines = [line[:-1] + tail for line in lines]
        self._write(self.sink.write_lines, lines)

    def shutdown(self) -> None:
        self.sink.close()
