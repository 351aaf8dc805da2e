"""The wide-events view: exactly one structured event per request."""

from __future__ import annotations

from otel_bridge.exporters.wide_events._exporter import WideEventsExporter

__all__ = ["WideEventsExporter"]
