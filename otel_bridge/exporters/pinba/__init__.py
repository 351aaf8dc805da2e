"""The Pinba view: one `Pinba.Request` UDP datagram per request, as php-pinba sends them."""

from __future__ import annotations

from otel_bridge.exporters.pinba._exporter import PinbaExporter
from otel_bridge.exporters.pinba._monitor import ScriptMonitor

__all__ = ["PinbaExporter", "ScriptMonitor"]
