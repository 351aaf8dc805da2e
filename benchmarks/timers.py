"""What one timer costs: otel_bridge's against the OpenTelemetry SDK's own child span.

    python -m benchmarks.timers            # print the table
    python -m benchmarks.timers --json     # one JSON object

A raw ASGI app runs N timers per request (N = 1, 10, 100, 1,000), each a block tagged
``group=db, op=select``. All CPU of the process is counted, export threads drained before the
clock stops; the cost per timer is (CPU per request with N timers minus with none) / N, so what
the request itself costs is left out. Cells, each in an interpreter of its own, three rounds
interleaved, medians:

- ``sdk``: no otel_bridge; each timer is the SDK's own child span (``start_as_current_span``),
  to a discarding BatchSpanProcessor: the floor.
- ``views``: otel_bridge with expvar, Pinba and wide events on and no span exporter.
- ``exported``: the same, and spans to a discarding BatchSpanProcessor.
- ``exported_cpu``: ``exported`` with per-timer CPU time on (``OTEL_BRIDGE_TIMER_CPU``).
- ``other``: ``exported``, each timer a span of another instrumentation (the SDK's child
  span, as httpx's or psycopg's are), which otel_bridge makes a timer too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

TIMERS = (1, 10, 100, 1_000)
CONFIGS = ("sdk", "views", "exported", "exported_cpu", "other")


def _requests_for(timers: int) -> int:
    return max(60, 20_000 // max(1, timers))


def cell(config: str, timers: int) -> float:
    """CPU µs per request of `config` with `timers` timers (in this process)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import otel_bridge
    from benchmarks.apps import NullSpanExporter, PinbaCollector
    from benchmarks.inprocess import run_asgi

    provider = TracerProvider()
    if config != "views":
        provider.add_span_processor(
            BatchSpanProcessor(NullSpanExporter(), max_queue_size=2_000_000)
        )
    collector = None
    if config == "sdk":
        tracer = provider.get_tracer("bench")

        async def app(scope: Any, receive: Any, send: Any) -> None:
            with tracer.start_as_current_span("request"):
                for _ in range(timers):
                    with tracer.start_as_current_span(
                        "db select", attributes={"group": "db", "op": "select"}
                    ):
                        pass
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        wrapped: Any = app

        def flush() -> None:
            provider.force_flush()

    else:
        collector = PinbaCollector()

        other = provider.get_tracer("other.instrumentation")

        async def plain(scope: Any, receive: Any, send: Any) -> None:
            if config == "other":
                for _ in range(timers):
                    with other.start_as_current_span(
                        "db select", attributes={"group": "db", "op": "select"}
                    ):
                        pass
            else:
                for _ in range(timers):
                    with otel_bridge.timer(group="db", op="select"):
                        pass
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        settings = otel_bridge.Settings(exporters=("expvar", "pinba", "wide_events")).replace(
            wide_events_sink="file:/dev/null",
            pinba_endpoint=f"127.0.0.1:{collector.port}",
            max_timers=1_000,
            timer_cpu=config == "exported_cpu",
            queue_size=100_000,
        )
        wrapped = otel_bridge.instrument(
            plain, settings=settings, tracer_provider=provider, meter_provider=MeterProvider()
        )

        def flush() -> None:
            wrapped.bridge.force_flush()
            provider.force_flush()

    n = _requests_for(timers)
    try:
        run_asgi(wrapped, max(20, n // 10))
        flush()
        cpu0 = time.process_time()
        run_asgi(wrapped, n)
        flush()
        cpu = time.process_time() - cpu0
        if config != "sdk":
            dropped = sum(wrapped.bridge.health.dropped.values())
            if dropped:
                raise SystemExit(f"{config} {timers}: {dropped} dropped")
    finally:
        if collector is not None:
            collector.kill()
    return cpu / n * 1e6


def _own_process(config: str, timers: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.timers", "--cell", config, str(timers)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def run(rounds: int = 3) -> dict[str, dict[int, float]]:
    """µs per timer, per config and timer count (median of `rounds`)."""
    samples: dict[tuple[str, int], list[float]] = {}
    for _ in range(rounds):
        for config in CONFIGS:
            base = _own_process(config, 0)
            for timers in TIMERS:
                per_request = _own_process(config, timers)
                samples.setdefault((config, timers), []).append((per_request - base) / timers)
    result: dict[str, dict[int, float]] = {config: {} for config in CONFIGS}
    for (config, timers), values in samples.items():
        result[config][timers] = statistics.median(values)
    return result


def table(result: dict[str, dict[int, float]]) -> str:
    header = "| timers per request | " + " | ".join(
        f"{config} µs/timer | vs sdk" if config != "sdk" else "sdk µs/timer" for config in CONFIGS
    )
    lines = [header + " |", "|---:" + "|---:" * (2 * len(CONFIGS) - 1) + "|"]
    for timers in TIMERS:
        floor = result["sdk"][timers]
        cells = [f"{floor:.2f}"]
        for config in CONFIGS[1:]:
            value = result[config][timers]
            cells += [f"{value:.2f}", f"{value / floor:.2f}"]
        lines.append(f"| {timers:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(result: dict[str, dict[int, float]], command: str) -> str:
    """The RESULTS.md section for `result`."""
    return "\n".join(
        [
            "## Timers against the SDK's own child span",
            "",
            "CPU per timer, all threads, from N timers per request minus none (raw ASGI app,",
            "expvar, Pinba and wide events on; `sdk` is the SDK alone, each timer its child span",
            "to a discarding BatchSpanProcessor; `other` is another instrumentation's span with",
            "otel_bridge on). Targets: views only ≤ 0.35x the SDK's span, spans exported and",
            "other instrumentations' spans ≤ 1.3x. Each cell in its own interpreter, median of",
            f"3 rounds. Command: `{command}` (alone: `python -m benchmarks.timers`).",
            "",
            table(result),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cell", nargs=2, metavar=("CONFIG", "TIMERS"))
    options = parser.parse_args()
    if options.cell:
        print(cell(options.cell[0], int(options.cell[1])))
        return
    result = run(options.rounds)
    print(json.dumps(result, indent=2) if options.json else table(result))


if __name__ == "__main__":
    main()
