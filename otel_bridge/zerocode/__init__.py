"""Zero-code mode: the views as OpenTelemetry exporters, for `opentelemetry-instrument`.

    OTEL_TRACES_EXPORTER=otlp,pinba,wide_events OTEL_METRICS_EXPORTER=otlp,expvar \\
        opentelemetry-instrument uvicorn app:app

The SDK's configurator finds these classes by entry point (groups
``opentelemetry_traces_exporter`` and ``opentelemetry_metrics_exporter``) and builds each with
no arguments; their options come from the same ``OTEL_EXPORTER_<NAME>_*`` variables as with
`instrument()`, validated at startup (`ConfigError` names the variable).

Trace side: the contrib instrumentations' server spans and the spans under them arrive in
batches from a BatchSpanProcessor. `RecordAssembler` waits for a request's server span (its
children end first, possibly in an earlier batch), folds it and its descendants into a
`RequestRecord`, and hands that to the view. Bounded: at most `MAX_TRACES` traces wait, each
with at most `MAX_SPANS` spans, for at most `MAX_AGE_S`; what falls out is counted.

Metric side: `ExpvarReader` is a pull reader for `/debug/vars`; with no wrapper to serve it,
it listens on a loopback address of its own (`OTEL_EXPORTER_EXPVAR_LISTEN`), with the same
access rules. Its per-route request statistics come from the trace side, when a trace-side
view is on too.

What only the wrapper knows, and zero-code records lack: CPU time, response body size,
whether the response completed, request headers (unless the instrumentation captures them
as ``http.request.header.*``) and requests the sampler drops (a BatchSpanProcessor passes
sampled spans only). `otel_bridge.timer()`, `otel_bridge.tag()` and
`otel_bridge.wide_event.set()` work in both modes: without a wrapper, tags and fields are
kept as attributes (``otel_bridge.tag.*``, ``otel_bridge.field.*``) of the current span.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge._context import mode
from otel_bridge._health import Health
from otel_bridge.config import Settings
from otel_bridge.errors import ConfigError
from otel_bridge.exporters.expvar._listen import listen
from otel_bridge.exporters.expvar._stats import ExpvarMetricReader
from otel_bridge.record import RecordExporter
from otel_bridge.zerocode.assembler import RecordAssembler

__all__ = [
    "ExpvarReader",
    "PinbaSpanExporter",
    "RecordAssembler",
    "WideEventsSpanExporter",
    "active",
]

logger = logging.getLogger("otel_bridge")

_lock = threading.Lock()
_health = Health()
_expvar: Any = None  # the ExpvarEndpoint of ExpvarReader, fed by the trace side
_feeder: object = None  # the trace-side exporter that feeds it (one, not one per view)


def active() -> bool:
    """Whether a zero-code exporter was built in this process (tags and wide-event fields
    then fall back to span attributes outside a wrapper's request)."""
    return mode.zerocode


def _mark_active() -> None:
    mode.zerocode = True


def _settings() -> Settings:
    """The settings, or the process stops: `opentelemetry-instrument` logs an exporter's
    exception and runs the app without telemetry, so a bad variable would pass unnoticed.
    SystemExit gets through its handler and stops startup with the variable named."""
    try:
        return Settings.from_env()
    except ConfigError as error:
        raise SystemExit(f"otel_bridge: {error}") from error


class _ViewSpanExporter(SpanExporter):
    """A view fed by the SDK's BatchSpanProcessor. Never raises into the SDK."""

    view_name = ""

    def __init__(self) -> None:
        global _feeder
        settings = _settings()
        self._view = self._build(settings)
        self._view.attach(_health)
        self._assembler = RecordAssembler(_health)
        with _lock:
            if _feeder is None:
                _feeder = self
        _mark_active()

    def _build(self, settings: Settings) -> RecordExporter:
        raise NotImplementedError

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            records = self._assembler.add(spans)
        except Exception as exc:  # noqa: BLE001 - never raise into the SDK's thread
            _health.error("zerocode.assemble", exc)
            return SpanExportResult.SUCCESS
        if not records:
            return SpanExportResult.SUCCESS
        try:
            self._view.export(records)
        except Exception as exc:  # noqa: BLE001
            _health.error(f"exporter.{self._view.name}", exc)
        expvar = _expvar
        if expvar is not None and _feeder is self:
            try:
                expvar.stats.export(records)
            except Exception as exc:  # noqa: BLE001
                _health.error("exporter.expvar", exc)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return self._view.force_flush(timeout_millis)
        except Exception as exc:  # noqa: BLE001
            _health.error(f"exporter.{self._view.name}", exc)
            return False

    def shutdown(self) -> None:
        try:
            self._view.shutdown()
        except Exception as exc:  # noqa: BLE001
            _health.error(f"exporter.{self._view.name}", exc)


class PinbaSpanExporter(_ViewSpanExporter):
    """``OTEL_TRACES_EXPORTER=pinba``: one Pinba packet per request."""

    view_name = "pinba"

    def _build(self, settings: Settings) -> RecordExporter:
        from otel_bridge.exporters.pinba import PinbaExporter

        return PinbaExporter.from_settings(settings)


class WideEventsSpanExporter(_ViewSpanExporter):
    """``OTEL_TRACES_EXPORTER=wide_events``: one wide event per request."""

    view_name = "wide_events"

    def _build(self, settings: Settings) -> RecordExporter:
        from otel_bridge.exporters.wide_events import WideEventsExporter

        return WideEventsExporter.from_settings(settings)


class ExpvarReader(ExpvarMetricReader):
    """``OTEL_METRICS_EXPORTER=expvar``: `/debug/vars` on a loopback listener of its own."""

    def __init__(self) -> None:
        global _expvar
        super().__init__()
        from otel_bridge.exporters.expvar._view import ExpvarEndpoint

        settings = _settings()
        view = ExpvarEndpoint.from_settings(settings)
        view.reader = self
        view.reader_attached = True
        view.health = _health
        view.exporter_names = ("expvar",)
        view.monitor.install()
        self.view = view
        self.server: ThreadingHTTPServer | None = None
        _expvar = view
        _mark_active()
        host, port = settings.expvar_listen
        try:
            self.server = listen(view, host, port)
        except OSError as exc:
            # Another process of the same server (a pre-fork worker) may hold the port.
            _health.error("expvar.listen", exc)

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the listener accepts connections, None if it could not bind."""
        if self.server is None:
            return None
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self.view.monitor.uninstall()
