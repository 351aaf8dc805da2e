"""Wide events: the background writer's throughput (events/s), JSON Lines and logfmt.

The request path's share is measured by the in-process matrix (`bridge_wide` vs `bridge`).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.pinba import sample_record
from otel_bridge.exporters.wide_events import WideEventsExporter
from otel_bridge.exporters.wide_events._sinks import FileSink, format_json, format_logfmt


def request_path(n: int = 10_000, rounds: int = 5) -> dict[str, float]:
    """CPU the serving thread spends per request on the wide-event machinery: raw ASGI and
    WSGI, `bridge_wide` against `bridge`, with the exporter thread's work taken away (so the
    GIL contention of a loop that never waits does not count), alternating, medians."""
    import statistics

    from benchmarks.apps import build
    from benchmarks.inprocess import run_asgi, run_wsgi

    out: dict[str, float] = {}
    for app_name, drive in (("asgi", run_asgi), ("wsgi", run_wsgi)):
        apps = {}
        for config in ("bridge", "bridge_wide"):
            app, flush, _ = build(app_name, config)
            drive(app, 1000)
            flush()
            app.bridge._worker.submit = lambda item: True
            apps[config] = app
        samples: dict[str, list[float]] = {config: [] for config in apps}
        for _ in range(rounds):
            for config, app in apps.items():
                start = time.thread_time()
                drive(app, n)
                samples[config].append((time.thread_time() - start) / n * 1e6)
        with_view = statistics.median(samples["bridge_wide"])
        out[f"{app_name}_added_us"] = with_view - statistics.median(samples["bridge"])
    return out


def run(n: int = 50_000) -> dict[str, Any]:
    record = sample_record()
    batch = [record] * 512
    # The request path first, in a process nothing else has filled yet (after the writer's
    # 50,000 events, or in the harness's own process, its garbage collections weighed on it:
    # 4.3 µs in one such run against 2.9 alone).
    results: dict[str, Any] = dict(request_path())
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
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 50_000)))
