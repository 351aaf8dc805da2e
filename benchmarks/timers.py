"""What one timer costs: otel_bridge's against the OpenTelemetry SDK's own child span.

    python -m benchmarks.timers            # print the table
    python -m benchmarks.timers --json     # one JSON object

A raw ASGI app runs N timers per request (N = 1, 10, 100, 1,000), each a block tagged
``group=db, op=select``. All CPU of the process is counted, export threads drained before the
clock stops; the cost per timer is (CPU per request with N timers minus with none) / N, so what
the request itself costs is left out. Both are measured in one process, in batches of
requests with N timers and batches with none, interleaved (`paired`): the machine's drift
over a run, which made a cell of one timer a request vary by a third from run to run when
the two were separate processes, cancels. Cells (config and N), each in an interpreter of
its own, five rounds interleaved, medians:

- ``sdk``: no otel_bridge; each timer is the SDK's own child span (``start_as_current_span``),
  to a discarding BatchSpanProcessor: the floor.
- ``views``: otel_bridge with expvar, Pinba and wide events on and no span exporter.
- ``views_python``: ``views`` on the Python code only (``OTEL_BRIDGE_PURE_PYTHON``): what a
  machine without a C compiler gets. Every other otel_bridge cell runs the C core where it
  applies (otel_bridge._speedups).
- ``exported``: the same, and spans to a discarding BatchSpanProcessor.
- ``exported_cpu``: ``exported`` with per-timer CPU time on (``OTEL_BRIDGE_TIMER_CPU``).
- ``other``: ``exported``, each timer a span of another instrumentation (a tracer's
  ``start_as_current_span``, as httpx's or psycopg's are), which otel_bridge makes a timer too
  (never the SDK's span object: otel_bridge._foreign_spans).
- ``other_sdk``: ``other`` with a span processor on the provider that watches spans start,
  so the SDK makes every span (the request's too), as in any setup with such a processor.
- ``queries``: ``views``, each timer a database query as Django's integration times it: its
  execute wrapper (otel_bridge.django._db) around a query that returns at once, on a
  PostgreSQL connection's settings, the statement of an N+1 (the same ``SELECT`` each time).
- ``queries_sdk``: the floor for ``queries``: the same wrapper with the SDK's own CLIENT span
  (``start_as_current_span``, the same name and attributes, made by the same code) in place
  of the timer, to a discarding BatchSpanProcessor.
- ``driver``: ``queries`` with the driver instrumented too, as the Django shop is
  (examples/django_shop): each query also a span of psycopg's instrumentation (its tracer's
  name, its attributes set after its start as dbapi's instrumentation sets them) inside
  Django's, which otel_bridge makes a timer and leaves out of the counts (the outer span
  stands for the query: otel_bridge._database).
- ``driver_sdk``: the floor for ``driver``: ``queries_sdk`` with the SDK's span for the
  driver's inside each query's.

For one timer a request, where its CPU goes is measured per thread too (Linux thread CPU
clocks, the same batches): the request's thread and each export thread, 1 timer minus none.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

TIMERS = (1, 10, 100, 1_000)
CONFIGS = (
    "sdk",
    "views",
    "views_python",
    "exported",
    "exported_cpu",
    "other",
    "other_sdk",
    "queries_sdk",
    "queries",
    "driver_sdk",
    "driver",
    "orm_sdk",
    "orm",
)
# The floors (the SDK alone), and each other config's: the SDK doing the same.
FLOORS = ("sdk", "queries_sdk", "driver_sdk", "orm_sdk")
FLOOR = {"queries": "queries_sdk", "driver": "driver_sdk", "orm": "orm_sdk"}


def floor_of(config: str) -> str:
    return FLOOR.get(config, "sdk")


# Timers a warm-loop measure runs inside its one request (under OTEL_BRIDGE_MAX_TIMERS's bound).
WARM_TIMERS = 10_000
# The configs whose first timer is split by thread: all but the exported and other ones.
SPLIT = tuple(
    config for config in CONFIGS if config not in ("exported", "exported_cpu", "other", "other_sdk")
)
# CPU µs per timer of each thread group in the last `paired()`, from each thread's CPU clock.
last_split: dict[str, float] = {}
# Batch pairs a `paired()` measure runs (each batch a quarter of `_requests_for` requests),
# and the rounds `make bench` runs (medians).
PAIRS = 8
ROUNDS = 5


def _thread_group(name: str) -> str:
    if name == "MainThread":
        return "request thread"
    if name.startswith("otel-bridge-"):
        return name.removeprefix("otel-bridge-")
    if name.startswith("OtelBatchSpanRecordProcessor"):
        return "SDK batch processor"
    return "other"


def _thread_clocks() -> dict[str, float]:
    """Each live thread's CPU seconds, summed by `_thread_group`."""
    clocks: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, AttributeError):  # ended meanwhile, or no such clock here
            continue
        group = _thread_group(thread.name)
        clocks[group] = clocks.get(group, 0.0) + seconds
    return clocks


def _requests_for(timers: int) -> int:
    return max(60, 20_000 // max(1, timers))


class _Served:
    """`config`'s app, wrapped, in this process: each request runs `count[0]` timed blocks."""

    def __init__(self, config: str) -> None:
        from opentelemetry.sdk.metrics import MeterProvider

        import otel_bridge
        from benchmarks.apps import PinbaCollector

        self.config = config
        self.count = [0]
        count = self.count
        provider = self.provider = _provider(config)
        block = _block(config, provider)
        self.collector = None
        if config in FLOORS:
            tracer = provider.get_tracer("bench")

            async def app(scope: Any, receive: Any, send: Any) -> None:
                with tracer.start_as_current_span("request"):
                    for _ in range(count[0]):
                        block()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})

            self.app: Any = app
            return
        self.collector = PinbaCollector()

        async def plain(scope: Any, receive: Any, send: Any) -> None:
            for _ in range(count[0]):
                block()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        settings = _settings(config, self.collector.port, 2 * max(TIMERS)).replace(
            queue_size=100_000
        )
        self.app = otel_bridge.instrument(
            plain, settings=settings, tracer_provider=provider, meter_provider=MeterProvider()
        )

    def flush(self) -> None:
        if self.config not in FLOORS:
            self.app.bridge.force_flush()
        self.provider.force_flush()

    def measure(self, timers: int, requests: int) -> tuple[float, dict[str, float]]:
        """CPU seconds of `requests` requests with `timers` timers each, the export threads
        drained, and each thread group's CPU seconds in them."""
        from benchmarks.inprocess import run_asgi

        self.count[0] = timers
        threads0 = _thread_clocks()
        cpu0 = time.process_time()
        run_asgi(self.app, requests)
        self.flush()
        cpu = time.process_time() - cpu0
        threads1 = _thread_clocks()
        return cpu, {
            group: seconds - threads0.get(group, 0.0) for group, seconds in threads1.items()
        }

    def close(self) -> None:
        if self.config not in FLOORS:
            dropped = sum(self.app.bridge.health.dropped.values())
            if dropped:
                raise SystemExit(f"{self.config}: {dropped} dropped")
        if self.collector is not None:
            self.collector.kill()


def paired(config: str, timers: int, pairs: int = PAIRS) -> float:
    """CPU µs per timer of `config` with `timers` timers a request (in this process): batches
    with `timers` timers and batches with none, interleaved (none, some, some, none, …), the
    difference of their sums over the timers run. The two kinds share the process, its warm
    code and its drift: what a request costs without timers cancels, and so does most of
    what the machine does meanwhile. `last_split`: the same by thread group."""
    served = _Served(config)
    n = _requests_for(timers) // 4
    cpu = {0: 0.0, timers: 0.0}
    threads: dict[int, dict[str, float]] = {0: {}, timers: {}}
    try:
        served.measure(timers, n)
        served.measure(0, n)
        for pair in range(pairs):
            for count in (0, timers) if pair % 2 == 0 else (timers, 0):
                seconds, by_thread = served.measure(count, n)
                cpu[count] += seconds
                for group, spent in by_thread.items():
                    threads[count][group] = threads[count].get(group, 0.0) + spent
    finally:
        served.close()
    runs = pairs * n * timers
    last_split.clear()
    for group in threads[0].keys() | threads[timers].keys():
        spent = threads[timers].get(group, 0.0) - threads[0].get(group, 0.0)
        last_split[group] = spent / runs * 1e6
    return (cpu[timers] - cpu[0]) / runs * 1e6


# The query of the `queries` cells: an N+1's, the same statement each time (Django's SQL).
STATEMENT = (
    'SELECT "shop_item"."id", "shop_item"."name" FROM "shop_item" WHERE "shop_item"."id" = %s'
)


class _Connection:
    """What Django's execute wrapper reads of a connection: its vendor and settings."""

    vendor = "postgresql"

    def __init__(self) -> None:
        self.settings_dict = {"NAME": "shop", "HOST": "localhost", "PORT": "5432"}


def _execute(sql: str, params: Any, many: bool, context: Any) -> None:
    """A query that returns at once: the timer's cost alone is measured."""


# What psycopg's instrumentation (opentelemetry-instrumentation-dbapi) sets on its span once
# started, in its order: the database's attributes at once (with the statement), then the
# connection's one by one.
DRIVER_DATABASE = {"db.system": "postgresql", "db.name": "shop"}
DRIVER_CONNECTION = (("db.user", "shop"), ("net.peer.name", "localhost"), ("net.peer.port", 5432))
# What SQLAlchemy's instrumentation sets on its span, one by one, in its order: the engine URL's
# attributes, then the statement's.
ORM_ATTRIBUTES = (
    ("net.peer.name", "localhost"),
    ("net.peer.port", 5432),
    ("db.name", "shop"),
    ("db.user", "shop"),
    ("db.statement", STATEMENT),
    ("db.system", "postgresql"),
    ("db.operation", "SELECT shop"),
)


def _block(config: str, provider: Any) -> Any:
    """One timed block of `config`: a function that runs it."""
    from opentelemetry.trace import SpanKind

    import otel_bridge
    from otel_bridge.django._db import _record_query, query_of

    tracer = provider.get_tracer("other.instrumentation")
    driver = provider.get_tracer("opentelemetry.instrumentation.psycopg")
    database = {**DRIVER_DATABASE, "db.statement": STATEMENT}

    def driver_execute(sql: str, params: Any, many: bool, context: Any) -> None:
        # As dbapi's instrumentation does: the span started, then its attributes set.
        with driver.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as span:
            if span.is_recording():
                span.set_attributes(database)
                for key, value in DRIVER_CONNECTION:
                    span.set_attribute(key, value)

    if config in ("orm", "orm_sdk"):
        from opentelemetry.trace import use_span

        orm = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")

        def orm_query() -> None:
            # As SQLAlchemy's instrumentation does around the cursor's execute: its span
            # started out of the context (the driver's span is its sibling), its attributes
            # set one by one, ended after the driver's.
            span = orm.start_span("SELECT shop", kind=SpanKind.CLIENT)
            with use_span(span, end_on_exit=False):
                if span.is_recording():
                    for key, value in ORM_ATTRIBUTES:
                        span.set_attribute(key, value)
            driver_execute(STATEMENT, (1,), False, None)
            span.end()

        return orm_query
    if config in ("driver", "driver_sdk"):
        connection = _Connection()
        context = {"connection": connection}

        if config == "driver":

            def driven_query() -> None:
                _record_query(driver_execute, STATEMENT, (1,), False, context)

            return driven_query

        def driven_sdk_query() -> None:
            name, query_attributes = query_of(connection, STATEMENT)
            with tracer.start_as_current_span(
                name, kind=SpanKind.CLIENT, attributes=query_attributes
            ):
                driver_execute(STATEMENT, (1,), False, context)

        return driven_sdk_query
    if config == "queries":
        context = {"connection": _Connection()}

        def query() -> None:
            _record_query(_execute, STATEMENT, (1,), False, context)

        return query
    if config == "queries_sdk":
        connection = _Connection()
        context = {"connection": connection}

        def sdk_query() -> None:
            # What _record_query does, the SDK's span in place of the timer.
            name, attributes = query_of(connection, STATEMENT)
            with tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
                _execute(STATEMENT, (1,), False, context)

        return sdk_query
    if config in ("sdk", "other", "other_sdk"):

        def span() -> None:
            with tracer.start_as_current_span(
                "db select", attributes={"group": "db", "op": "select"}
            ):
                pass

        return span

    def timed() -> None:
        with otel_bridge.timer(group="db", op="select"):
            pass

    return timed


def _provider(config: str) -> Any:
    """The SDK tracer provider of a cell: spans to a discarding BatchSpanProcessor (none for
    `views`); for `other_sdk`, a processor that watches spans start, too."""
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from benchmarks.apps import NullSpanExporter

    class Watching(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            pass

    provider = TracerProvider()
    if config not in ("views", "views_python", "queries", "driver", "orm"):
        provider.add_span_processor(
            BatchSpanProcessor(NullSpanExporter(), max_queue_size=2_000_000)
        )
    if config == "other_sdk":
        provider.add_span_processor(Watching())
    return provider


def _settings(config: str, pinba_port: int, max_timers: int) -> Any:
    """otel_bridge's settings for `config` (every view on)."""
    import otel_bridge

    return otel_bridge.Settings(exporters=("expvar", "pinba", "wide_events")).replace(
        wide_events_sink="file:/dev/null",
        pinba_endpoint=f"127.0.0.1:{pinba_port}",
        max_timers=max_timers,
        timer_cpu=config == "exported_cpu",
        pure_python=config == "views_python",
    )


def warm(config: str) -> float:
    """CPU µs of the request's thread per timer, timers run back to back inside one request
    (best of 5 runs of `WARM_TIMERS`, the garbage collector off): what the block itself costs
    where it runs, its code and data warm, without the per-request part. The views' work on
    the export threads is not in it (nor the BatchSpanProcessor's, for `sdk`)."""
    import asyncio
    import gc

    from opentelemetry.sdk.metrics import MeterProvider

    import otel_bridge
    from benchmarks.apps import PinbaCollector

    provider = _provider(config)
    tracer = provider.get_tracer("other.instrumentation")
    measured: list[float] = []
    block = _block(config, provider)

    def loop() -> None:
        gc.disable()
        try:
            for _ in range(5):
                started = time.thread_time()
                for _ in range(WARM_TIMERS // 5):
                    block()
                measured.append((time.thread_time() - started) / (WARM_TIMERS // 5) * 1e6)
        finally:
            gc.enable()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if config in FLOORS:
            with tracer.start_as_current_span("request"):
                loop()
        else:
            loop()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped: Any = app
    collector = None
    if config not in FLOORS:
        collector = PinbaCollector()
        # (`driver`'s blocks are two timers each)
        settings = _settings(config, collector.port, 2 * WARM_TIMERS)
        wrapped = otel_bridge.instrument(
            app, settings=settings, tracer_provider=provider, meter_provider=MeterProvider()
        )

    async def one() -> None:
        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        received = {"type": "http.request", "body": b"", "more_body": False}

        async def receive() -> dict[str, Any]:
            return received

        async def send(message: dict[str, Any]) -> None:
            pass

        await wrapped(scope, receive, send)

    try:
        asyncio.run(one())
        if config not in FLOORS:
            wrapped.bridge.force_flush()
    finally:
        if collector is not None:
            collector.kill()
    return min(measured)


def _last_line(*arguments: str) -> str:
    """The last line `python -m benchmarks.timers ARGUMENTS` prints, in an interpreter of its
    own."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.timers", *arguments],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().splitlines()[-1]


def _own_process(*arguments: str) -> float:
    return float(_last_line(*arguments))


Result = dict[str, dict[Any, float]]


def run(rounds: int = 3) -> Result:
    """µs per timer, per config and timer count (`paired`, median of `rounds`), and for
    one timer a request, by thread group (under ``"split CONFIG"``); under ``"warm"``, per
    config, the request thread's µs per timer in a loop (`warm`)."""
    samples: dict[tuple[str, Any], list[float]] = {}
    for _ in range(rounds):
        for config in CONFIGS:
            for timers in TIMERS:
                measured = json.loads(_last_line("--paired", config, str(timers)))
                samples.setdefault((config, timers), []).append(measured["per_timer"])
                if timers == 1 and config in SPLIT:
                    for group, spent in measured["split"].items():
                        samples.setdefault((f"split {config}", group), []).append(spent)
            samples.setdefault(("warm", config), []).append(_own_process("--warm", config))
    result: Result = {config: {} for config in (*CONFIGS, "warm")}
    for (config, key), values in samples.items():
        result.setdefault(config, {})[key] = statistics.median(values)
    return result


def table(result: Result) -> str:
    header = "| timers per request | " + " | ".join(
        f"{config} µs/timer" if config in FLOORS else f"{config} µs/timer | vs {floor_of(config)}"
        for config in CONFIGS
    )
    columns = sum(1 if config in FLOORS else 2 for config in CONFIGS)
    lines = [header + " |", "|---:" + "|---:" * columns + "|"]
    for timers in TIMERS:
        cells = []
        for config in CONFIGS:
            value = result[config][timers]
            cells.append(f"{value:.2f}")
            if config not in FLOORS:
                cells.append(f"{value / result[floor_of(config)][timers]:.2f}")
        lines.append(f"| {timers:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(result: Result, command: str, rounds: int = 3) -> str:
    """The RESULTS.md section for `result`."""
    return "\n".join(
        [
            "## Timers against the SDK's own child span",
            "",
            "CPU per timer, all threads, from N timers per request minus none (raw ASGI app,",
            "expvar, Pinba and wide events on; `sdk` is the SDK alone, each timer its child span",
            "to a discarding BatchSpanProcessor; `other` is another instrumentation's span with",
            "otel_bridge on; `other_sdk` the same with a processor on the provider that watches",
            "spans start, so that the SDK makes every span; `views_python` is `views` on the",
            "Python code alone, without the C core the others use; `queries` is `views` with",
            "each timer a query through Django's execute wrapper, against `queries_sdk`, the",
            "same wrapper with the SDK's CLIENT span in place of the timer; `driver` is",
            "`queries` with psycopg's span inside each query, as in a project that instruments",
            "its driver too, against `driver_sdk`, both spans the SDK's; `orm` is",
            "SQLAlchemy's span and psycopg's beside it for each query, as with both",
            "instrumented, views only, against `orm_sdk`, both the SDK's). Targets: views",
            "only ≤ 0.35x the SDK's span (`otel_bridge.timer()` and Django's query timers),",
            "spans exported and other instrumentations' spans ≤ 1.3x.",
            "Each cell in its own interpreter, batches of N timers a request and batches of",
            f"none interleaved in it (their difference is the cost), median of {rounds} rounds.",
            "Command:",
            f"`{command}` (alone: `python -m benchmarks.timers`).",
            "",
            table(result),
            "",
            targets(result),
            "",
            "Per request, the first timer costs more than the next ones, the SDK's span too:",
            "its code and data are cold (the rest of the request ran in between), and it",
            "switches each view to the path of a request with timers. The same block run",
            f"back to back inside one request ({WARM_TIMERS:,} times, the garbage collector",
            "off, the request thread's CPU only, the views' export threads not counted):",
            "",
            warm_table(result),
            "",
            "Where one timer's CPU goes, by thread: a request with one timer minus one with",
            "none, each thread's CPU clock, medians. The views' part of a request with timers",
            "is paid once for its first timer, on the export threads:",
            "",
            split_table(result),
            "",
        ]
    )


def split_table(result: Result) -> str:
    """Per thread, µs of the first timer, for each config in `SPLIT`."""
    splits = [result.get(f"split {config}", {}) for config in SPLIT]
    groups = sorted(
        {group for split in splits for group in split},
        key=lambda group: (group != "request thread", group),
    )
    lines = [
        "| thread | " + " | ".join(f"{config} µs" for config in SPLIT) + " |",
        "|---" + "|---:" * len(SPLIT) + "|",
    ]
    for group in groups:
        cells = [f"{split[group]:.2f}" if group in split else "" for split in splits]
        lines.append(f"| {group} | " + " | ".join(cells) + " |")
    totals = [f"**{sum(split.values()):.2f}**" for split in splits]
    lines.append("| all | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def targets(result: Result) -> str:
    """The issue's targets (#22) against `result`, each met or not."""

    def ratios(config: str) -> list[float]:
        return [result[config][timers] / result[floor_of(config)][timers] for timers in TIMERS]

    rows = [
        ("views only ≤ 0.35x the SDK's span", "views", 0.35),
        ("the same on the Python code alone (no C compiler)", "views_python", 0.35),
        ("Django's query timers, views only, ≤ 0.35x the SDK's CLIENT span", "queries", 0.35),
        ("spans exported ≤ 1.3x", "exported", 1.3),
        ("other instrumentations' spans ≤ 1.3x", "other", 1.3),
        (
            "Django's query timers with psycopg's span inside each, views only: other "
            "instrumentations' bound, ≤ 1.3x",
            "driver",
            1.3,
        ),
        (
            "SQLAlchemy's span and psycopg's beside it, views only: other instrumentations' "
            "bound, ≤ 1.3x",
            "orm",
            1.3,
        ),
    ]
    lines = ["| target (1 / 10 / 100 / 1,000 timers) | measured | met |", "|---|---|---|"]
    for text, config, bound in rows:
        found = ratios(config)
        shown = " / ".join(f"{ratio:.2f}" for ratio in found)
        met = (
            "yes"
            if max(found) <= bound
            else "no: "
            + ", ".join(
                f"{timers:,}" for timers, ratio in zip(TIMERS, found, strict=True) if ratio > bound
            )
        )
        lines.append(f"| {text} | {shown} | {met} |")
    for config in ("views", "queries", "exported", "other", "driver", "orm"):
        costs = [result[config][timers] for timers in TIMERS]
        grows = any(later > costs[0] for later in costs[1:])
        shown = " / ".join(f"{cost:.1f}" for cost in costs)
        lines.append(
            f"| {config}: µs per timer never above the first one's (no growth with the count) "
            f"| {shown} | {'no' if grows else 'yes'} |"
        )
    return "\n".join(lines)


def warm_table(result: Result) -> str:
    warm = result["warm"]
    lines = ["| config | µs per timer, warm | vs its floor |", "|---|---:|---:|"]
    for config in CONFIGS:
        floor = warm[config if config in FLOORS else floor_of(config)]
        lines.append(f"| {config} | {warm[config]:.2f} | {warm[config] / floor:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--paired", nargs=2, metavar=("CONFIG", "TIMERS"), help="µs per timer and by thread"
    )
    parser.add_argument("--warm", metavar="CONFIG")
    options = parser.parse_args()
    if options.paired:
        per_timer = paired(options.paired[0], int(options.paired[1]))
        print(json.dumps({"per_timer": per_timer, "split": last_split}))
        return
    if options.warm:
        print(warm(options.warm))
        return
    result = run(options.rounds)
    if options.json:
        print(json.dumps(result, indent=2))
    else:
        print(table(result) + "\n\n" + warm_table(result) + "\n\n" + split_table(result))


if __name__ == "__main__":
    main()
