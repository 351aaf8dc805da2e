"""The exporters otel_bridge creates from `OTEL_*_EXPORTER` (and for the wide events' `otlp`
sink), wrapped so that what they give up on is counted in the bridge's health and logged once,
and so that their own log messages show once while exporting instead of for every batch and
retry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_bridge._health import Health

__all__ = ["CountedLogExporter", "CountedMetricExporter", "CountedSpanExporter", "GaveUp"]


class _ExportLogs(logging.Filter):
    """Lets through the first of each message the exporters otel_bridge made log while they
    export, and none of its repeats: a Collector that is down would otherwise have the SDK's
    exporter log every batch and every retry. The failures are counted in the bridge's
    health (and its periodic summary says how many more). Logs outside those exports, and
    other exporters' logs, pass untouched. `with _EXPORT_LOGS:` marks such an export."""

    LIMIT = 256  # distinct messages remembered; past it, new ones pass

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.local()
        self._seen: set[tuple[str, object]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(self.inside, "active", False):
            return True
        key = (record.name, record.msg)
        if key in self._seen:
            return False
        if len(self._seen) < self.LIMIT:
            self._seen.add(key)
        return True

    def __enter__(self) -> None:
        self.inside.active = True

    def __exit__(self, *exc: object) -> None:
        self.inside.active = False

    def attach(self) -> None:
        """On every logger of the OTel exporter packages imported so far (a filter on a
        parent logger does not see its children's records)."""
        names = [
            name
            for name in list(logging.Logger.manager.loggerDict)
            if name.startswith("opentelemetry.exporter")
        ]
        for name in names:
            found = logging.getLogger(name)
            if self not in found.filters:
                found.addFilter(self)


_EXPORT_LOGS = _ExportLogs()


class GaveUp(Exception):
    """An exporter returned FAILURE: it gave a batch up (after its own retries)."""


def _gave_up(health: Health, kind: str, count: int, what: str) -> None:
    # Counted, and logged once (then summarised) as the other failures are.
    health.drop(kind, count)
    health.error(
        kind,
        GaveUp(
            f"the exporter gave up {count} {what} (its Collector refused or "
            "did not answer); counted in /debug/vars under bridge dropped"
        ),
    )


class CountedSpanExporter(SpanExporter):
    """The exporter otel_bridge made from OTEL_TRACES_EXPORTER, with its failures (a Collector
    down, refusing, timing out) counted in the bridge's health, so `/debug/vars` shows them."""

    def __init__(self, inner: SpanExporter, health: Health, kind: str) -> None:
        self.inner = inner
        self._health = health
        self._kind = kind
        _EXPORT_LOGS.attach()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            with _EXPORT_LOGS:
                result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - counted; the batch is lost either way
            self._health.error(self._kind, exc)
            return SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            _gave_up(self._health, self._kind, len(spans), "spans")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountedMetricExporter(MetricExporter):
    """As `CountedSpanExporter`, for OTEL_METRICS_EXPORTER's push exporters."""

    def __init__(self, inner: MetricExporter, health: Health, kind: str) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self.inner = inner
        self._health = health
        self._kind = kind
        _EXPORT_LOGS.attach()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            with _EXPORT_LOGS:
                result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:  # noqa: BLE001
            self._health.error(self._kind, exc)
            return MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            _gave_up(self._health, self._kind, 1, "metric batches")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class CountedLogExporter:
    """As `CountedSpanExporter`, for the wide events' OTLP log records; counts into `health`
    once the view is attached to a bridge."""

    def __init__(self, inner: Any, kind: str) -> None:
        self.inner = inner
        self.health = Health()
        self._kind = kind
        _EXPORT_LOGS.attach()

    def export(self, batch: Sequence[Any]) -> Any:
        # LogExportResult in older SDKs, LogRecordExportResult in newer ones: the same members.
        from opentelemetry.sdk._logs import export

        results = getattr(export, "LogRecordExportResult", None) or export.LogExportResult

        try:
            with _EXPORT_LOGS:
                result = self.inner.export(batch)
        except Exception as exc:  # noqa: BLE001
            self.health.error(self._kind, exc)
            return results.FAILURE
        if result is not results.SUCCESS:
            _gave_up(self.health, self._kind, len(batch), "log records")
        return result

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def shutdown(self) -> None:
        self.inner.shutdown()
