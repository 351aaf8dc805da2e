"""Wide events: the background writer's throughput (events/s), JSON Lines and logfmt.

The request path's share is measured by the in-process matrix (`bridge_wide` vs `bridge`).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.pinba import sample_record
from otel_bridge.exporters.wide_events import WideEventsExporter
from otel_bridge.exporters.wide_events._sinks import FileSink, format_json, format_logfmt


def run(n: int = 50_000) -> dict[str, Any]:
    record = sample_record()
    batch = [record] * 512
    results: dict[str, Any] = {}
    for name, formatter in (("json", format_json), ("logfmt", format_logfmt)):
        exporter = WideEventsExporter(FileSink("/dev/null", formatter))
        exporter.export(batch)  # warm up
        start = time.perf_counter()
        for _ in range(n // len(batch)):
            exporter.export(batch)
        elapsed = time.perf_counter() - start
        results[f"{name}_events_per_s"] = (n // len(batch)) * len(batch) / elapsed
        exporter.shutdown()
    return results


if __name__ == "__main__":
    print(run())
