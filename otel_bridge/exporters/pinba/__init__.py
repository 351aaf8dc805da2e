"""The Pinba view: one `Pinba.Request` UDP datagram per request, as php-pinba sends them.

`ScriptMonitor` (jobs) lives in `otel_bridge.jobs` and is `otel_bridge.ScriptMonitor`; the old
path `otel_bridge.exporters.pinba.ScriptMonitor` still works.
"""

from __future__ import annotations

from typing import Any

from otel_bridge.exporters.pinba._exporter import PinbaExporter

__all__ = ["PinbaExporter"]


def __getattr__(name: str) -> Any:
    # The documented path of ScriptMonitor before it became an entry point of its own. The
    # one import from a view up to an entry point, made only when the old name is used.
    if name == "ScriptMonitor":
        from otel_bridge.jobs import ScriptMonitor

        return ScriptMonitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
