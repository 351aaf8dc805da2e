"""Run every benchmark side by side in one run and print (or write) the results table.

    python -m benchmarks                    # print
    python -m benchmarks --write            # also write benchmarks/RESULTS.md
    python -m benchmarks --quick            # fewer requests, for a smoke run

In-process cells each run in their own interpreter (the contrib middleware reads its semconv
mode once per process), three times, interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    expvar,
    http,
    pinba,
    profile,
    server_wide,
    slow_clients,
    stuck_view,
)
from benchmarks import timers as timer_cost
from benchmarks.apps import APPS, CONFIGS

RESULTS = Path(__file__).with_name("RESULTS.md")
HTTP_CONFIGS = ("bare", "contrib", "bridge", "bridge_all", "floor", "floor_all")
PROFILED = ("contrib", "floor_all", "bridge_all")
# Components of the profile table, in its column order.
PROFILE_COLUMNS = (
    ("OpenTelemetry SDK + API", "SDK + API"),
    ("contrib middleware", "contrib"),
    ("floor", "floor"),
    ("otel_bridge core", "otel_bridge core"),
    ("Pinba", "Pinba"),
    ("wide events", "wide events"),
    ("expvar", "expvar"),
    ("app", "app"),
    ("driver + event loop", "driver, loop"),
    ("other", "other"),
)


def in_process(n: int, repeats: int) -> dict[tuple[str, str], dict[str, float]]:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(repeats):
        for app in APPS:
            for config in CONFIGS:
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.inprocess", app, config, str(n)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                cell = json.loads(out.stdout)
                if cell["dropped"]:
                    raise SystemExit(f"{app} {config}: {cell['dropped']} records dropped")
                runs.setdefault((app, config), []).append(cell)
    medians: dict[tuple[str, str], dict[str, float]] = {}
    for key, cells in runs.items():
        medians[key] = {
            field: statistics.median(cell[field] for cell in cells)
            for field in ("wall_us", "cpu_us", "request_cpu_us", "gc_us", "spans_per_request")
        }
    return medians


def over_http_cells(duration_s: int, repeats: int) -> list[dict[str, Any]]:
    """Each cell `repeats` times, interleaved (one round of every cell, then the next); per
    cell the run of median throughput, so its req/s and latencies come from one run."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(repeats):
        for app in APPS:
            for config in HTTP_CONFIGS:
                runs.setdefault((app, config), []).append(
                    http.cell(app, config, duration_s=duration_s)
                )
    return [sorted(cells, key=lambda cell: cell["rps"])[len(cells) // 2] for cells in runs.values()]


def profiles(n: int) -> dict[tuple[str, str], dict[str, float]] | str:
    """py-spy shares per component of the profiled cells; the reason if py-spy cannot run."""
    found: dict[tuple[str, str], dict[str, float]] = {}
    for app in APPS:
        for config in PROFILED:
            try:
                found[(app, config)] = profile.profile(app, config, n)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                return str(exc)
    return found


def render(
    medians: dict[tuple[str, str], dict[str, float]],
    over_http: list[dict[str, Any]],
    pinba_result: dict[str, float],
    expvar_result: dict[str, Any],
    wide_result: dict[str, Any],
    scale_result: dict[str, Any],
    memory_result: dict[str, Any],
    profiled: dict[tuple[str, str], dict[str, float]] | str,
    command: str,
    n: int,
    repeats: int,
) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()} with {platform.python_implementation()} "
        f"{platform.python_version()}, 2 cores. Numbers are for this machine; the ratios are "
        "what carries over.",
        "",
        "## In-process: µs per request (median of "
        f"{repeats} x {n:,} requests, each cell in its own interpreter)",
        "",
        "`cpu` is all CPU the process spent per request, background threads included (the "
        "batch span processor's and the bridge's exporter thread, flushed before the clock "
        "stops); `request` is the CPU of the thread that served the request, the part a "
        "request waits for. `overhead` is `cpu` minus the bare app's; `ratio` is that overhead "
        "over the contrib instrumentation's (default settings). Every otel_bridge cell exported "
        "every record: the harness refuses a run in which the bridge dropped any (a full queue "
        "would skip the export work and flatter the numbers).",
        "",
        "| app | config | cpu µs | request µs | spans/req | overhead µs | ratio vs contrib |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for app in APPS:
        bare = medians[(app, "bare")]["cpu_us"]
        contrib = medians[(app, "contrib")]["cpu_us"] - bare
        for config in CONFIGS:
            cell = medians[(app, config)]
            overhead = cell["cpu_us"] - bare
            ratio = "" if config == "bare" else f"{overhead / contrib:.2f}"
            lines.append(
                f"| {app} | {config} | {cell['cpu_us']:.1f} | {cell['request_cpu_us']:.1f} | "
                f"{cell['spans_per_request']:.2f} | {overhead:.1f} | {ratio} |"
            )
    lines += [
        "",
        "Configs: `bare` the app alone; `contrib` opentelemetry-instrumentation-asgi/-wsgi "
        "with the SDK, BatchSpanProcessor and a periodic metric reader (default settings, "
        "send/receive spans on for ASGI); `contrib_tuned` the same with "
        "`OTEL_SEMCONV_STABILITY_OPT_IN=http` and `exclude_spans=[send, receive]`; `bridge` "
        "otel_bridge with the same providers and exporters (spans and metrics, no view); "
        "`bridge_views` otel_bridge without a span exporter (views only: no SDK span is made, "
        "the request carries its trace identity alone); `bridge_wide` `bridge` plus wide events "
        "(JSON Lines to /dev/null); `bridge_all` `bridge` plus all four views: expvar, Pinba "
        "(to a collector process on 127.0.0.1), wide events to /dev/null and a route that "
        "declares a Cronitor healthcheck; `floor` and `floor_all` the least any "
        "instrumentation on the SDK must do to deliver what `bridge` and `bridge_all` deliver, "
        "with no logic of its own (`benchmarks/floor.py`: ids, sampler, context, one "
        "ReadableSpan to the BatchSpanProcessor, the duration histogram; for `floor_all` also "
        "two getrusage() calls, one send() of a ready-made Pinba datagram, one ready-made line "
        "written per 64 requests and a counter). Not a product: the yardstick that says whether "
        "a target is out of reach for anything built on the SDK.",
        "",
        "With only BatchSpanProcessor / SimpleSpanProcessor on the provider (the `bridge` "
        "configs), otel_bridge builds the exported server span once, when the request ends, "
        "instead of the SDK's mutable span at its start (`otel_bridge/_spans.py`); any other "
        "processor gets the SDK span as `Tracer.start_span` makes it. "
        "`tests/test_server_span.py` checks that both export the same span.",
        "",
        "## Over HTTP (wrk, 1 thread, 16 connections, 5 s, loopback)",
        "",
        f"Each cell run {repeats} times, interleaved; the run of median throughput is shown "
        "(throughput and latencies from the same run).",
        "",
        "| app | server | config | req/s | vs bare | vs contrib | p50 ms | p99 ms |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["app"], r["config"]): r for r in over_http}
    for row in over_http:
        bare_rps = by_key[(row["app"], "bare")]["rps"]
        contrib_rps = by_key[(row["app"], "contrib")]["rps"]
        server = "gunicorn (sync)" if row["app"] == "wsgi" else "uvicorn"
        lines.append(
            f"| {row['app']} | {server} | {row['config']} | {row['rps']:,.0f} | "
            f"{row['rps'] / bare_rps:.2f} | {row['rps'] / contrib_rps:.2f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} |"
        )
    lines += [
        "",
        "## Pinba: µs per packet, encode + send",
        "",
        "A request with 5 timers of 3 tags and 3 request tags "
        f"({pinba_result['bytes']:.0f}-byte datagram), sent to a UDP socket on 127.0.0.1; "
        "median of 5 runs of 20,000 packets, one process, alternating.",
        "",
        "| encoder | µs/packet | ours / it |",
        "|---|---:|---:|",
        f"| otel_bridge (record → datagram → sendto) | {pinba_result['ours']:.2f} | |",
        f"| protobuf (upb), same path: timers merged and dictionary built in Python, message "
        f"filled, SerializeToString, sendto | {pinba_result['protobuf']:.2f} | "
        f"{pinba_result['ratio']:.2f} |",
        f"| protobuf (upb), handed the finished field values: fill, serialise, sendto | "
        f"{pinba_result['protobuf_fields']:.2f} | {pinba_result['ratio_fields']:.2f} |",
    ]
    lines += [
        "",
        "## `/debug/vars`: ours against Go's own expvar handler",
        "",
        f"{expvar_result['vars']:,} user variables (Float, Int, String) on both; ours also "
        "serves 100 OTel metrics (counters) and Go 100 `expvar.Map`s in their place. Ours on "
        "uvicorn (one process), Go 1.19's `net/http` + `expvar` (`tests/exporters/expvar/"
        "goref.go`); `wrk -t1 -c1`, 3 s each, alternating, 3 rounds, median of the median "
        "latencies. The OTel section is collected at most once a second (the SDK's collect() "
        "of 100 metrics costs ~0.6 ms); every other section is rendered on every request.",
        "",
        "| server | median latency ms | body bytes |",
        "|---|---:|---:|",
        f"| Go expvar | {expvar_result['go_ms']:.3f} | {expvar_result['go_bytes']:,} |",
        f"| otel_bridge | {expvar_result['ours_ms']:.3f} | {expvar_result['ours_bytes']:,} |",
        "",
        f"Ratio ours / Go: **{expvar_result['ratio']:.2f}**. The GC callback that measures "
        f"pauses adds {expvar_result['cost_us']:.2f} µs to a generation-0 collection "
        f"({expvar_result['without_us']:.2f} → {expvar_result['with_us']:.2f} µs).",
        "",
        "## Wide events",
        "",
        "Request-path cost: CPU of the serving thread per request with the wide-events view "
        "on minus without, the exporter thread's work taken away (alternating, medians of 5 "
        f"x 10,000): raw ASGI {wide_result['asgi_added_us']:.2f} µs, WSGI "
        f"{wide_result['wsgi_added_us']:.2f} µs. (In the table above, `bridge_wide` against "
        "`bridge` also shows the exporter thread's work and, for a loop that never waits, "
        "its contention for the GIL.)",
        "",
        f"Writer throughput (build, format, write to /dev/null, one thread): "
        f"{wide_result['json_events_per_s']:,.0f} events/s as JSON Lines, "
        f"{wide_result['logfmt_events_per_s']:,.0f} as logfmt.",
        "",
    ]
    lines += _scale_lines(scale_result, memory_result)
    lines += _profile_lines(medians, profiled)
    lines += _target_lines(medians, over_http)
    lines += _other_target_lines(
        pinba_result, expvar_result, wide_result, scale_result, memory_result
    )
    return "\n".join(lines) + "\n"


def _other_target_lines(
    pinba_result: dict[str, float],
    expvar_result: dict[str, Any],
    wide_result: dict[str, Any],
    scale_result: dict[str, Any],
    memory_result: dict[str, Any],
) -> list[str]:
    """The performance issue's targets 4 to 6, against this run's numbers."""

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    wide = max(wide_result["asgi_added_us"], wide_result["wsgi_added_us"])
    halves = (
        memory_result["rss_midway_mb"] - memory_result["rss_after_warmup_mb"],
        memory_result["rss_after_all_mb"] - memory_result["rss_midway_mb"],
    )
    objects0, objects1 = memory_result["objects"]
    threads0, threads1 = memory_result["threads"]
    # Linear or better: the cost of one more unit over the last step is at most 1.25x its
    # cost over the first step.
    timers = scale_result["timers"]
    per_timer = [
        (b["us_per_request"] - a["us_per_request"]) / (b["timers"] - a["timers"])
        for a, b in itertools.pairwise(timers)
    ]
    variables = scale_result["vars"]
    per_var = [
        (b["median_ms"] - a["median_ms"]) / (b["vars"] - a["vars"]) * 1000
        for a, b in itertools.pairwise(variables)
    ]
    rows = [
        (
            "Pinba encode + send ≤ 0.5x protobuf's",
            f"{pinba_result['ratio']:.2f}x",
            pinba_result["ratio"] <= 0.5,
        ),
        (
            "wide events, request path ≤ 3 µs (raw ASGI, WSGI)",
            f"{wide_result['asgi_added_us']:.2f}, {wide_result['wsgi_added_us']:.2f} µs",
            wide <= 3,
        ),
        (
            "`/debug/vars` with 1,000 vars, median latency ≤ Go's expvar",
            f"{expvar_result['ratio']:.2f}x",
            expvar_result["ratio"] <= 1.0,
        ),
        (
            "memory: over 200,000 requests, RSS grows < 5 MB in one half at least (a leak grows "
            "both), live objects and threads flat",
            f"{halves[0]:+.1f} / {halves[1]:+.1f} MB, objects {objects1 - objects0:+,}, "
            f"threads {threads1 - threads0:+}",
            min(halves) < 5 and objects1 - objects0 < 500 and threads1 == threads0,
        ),
        (
            "cost per timer, steps 0→1, 1→10, 10→100 timers: linear or better",
            " → ".join(f"{cost:.1f}" for cost in per_timer) + " µs",
            per_timer[-1] <= 1.25 * per_timer[0],
        ),
        (
            "`/debug/vars` cost per variable, steps 10→1,000→10,000: linear or better",
            " → ".join(f"{cost:.2f}" for cost in per_var) + " µs",
            per_var[-1] <= 1.25 * per_var[0],
        ),
    ]
    lines = ["| target | this run | |", "|---|---|---|"]
    lines += [f"| {label} | {value} | {mark(ok)} |" for label, value, ok in rows]
    return [*lines, ""]


def _target_lines(
    medians: dict[tuple[str, str], dict[str, float]], over_http: list[dict[str, Any]]
) -> list[str]:
    """The targets of the foundation and performance issues, against this run's numbers."""

    def ratio(app: str, config: str) -> float:
        bare = medians[(app, "bare")]["cpu_us"]
        return (medians[(app, config)]["cpu_us"] - bare) / (
            medians[(app, "contrib")]["cpu_us"] - bare
        )

    def mark(ok: bool) -> str:
        return "met" if ok else "**not met**"

    http = {(r["app"], r["config"]): r["rps"] for r in over_http}
    lines = [
        "## Targets against this run",
        "",
        "| target | asgi | starlette | wsgi |",
        "|---|---|---|---|",
    ]
    rows = [
        ("spans + metrics, overhead ≤ 1/3 of contrib's (in-process)", "bridge", 1 / 3),
        ("all four views + spans + metrics, overhead ≤ 1/4 of contrib's", "bridge_all", 1 / 4),
    ]
    floors = {"bridge": "floor", "bridge_all": "floor_all"}
    for label, config, limit in rows:
        cells = [
            f"{ratio(app, config):.2f} {mark(ratio(app, config) <= limit)} "
            f"(floor {ratio(app, floors[config]):.2f})"
            for app in APPS
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    views = [medians[(app, "bridge_views")] for app in APPS]
    bare = [medians[(app, "bare")] for app in APPS]
    lines.append(
        "| views only, request path ≤ 10 µs over bare (all CPU in brackets) | "
        + " | ".join(
            f"{v['request_cpu_us'] - b['request_cpu_us']:.1f} µs ({v['cpu_us'] - b['cpu_us']:.1f})"
            f" {mark(v['request_cpu_us'] - b['request_cpu_us'] <= 10)}"
            for v, b in zip(views, bare, strict=True)
        )
        + " |"
    )
    for config in ("bridge", "bridge_all"):
        cells = []
        for app in APPS:
            vs_bare = http[(app, config)] / http[(app, "bare")]
            vs_contrib = http[(app, config)] / http[(app, "contrib")]
            floor = http[(app, floors[config])]
            cells.append(
                f"{vs_bare:.2f}x bare {mark(vs_bare >= 0.8)}, "
                f"{vs_contrib:.2f}x contrib {mark(vs_contrib >= 2)} "
                f"(floor {floor / http[(app, 'bare')]:.2f}x, "
                f"{floor / http[(app, 'contrib')]:.2f}x)"
            )
        lines.append(f"| HTTP `{config}` ≥ 0.8x bare, ≥ 2x contrib | " + " | ".join(cells) + " |")
    headroom = {app: http[(app, "bare")] / http[(app, "contrib")] for app in APPS}
    room = []
    for app in APPS:
        bare_cpu = medians[(app, "bare")]["cpu_us"]
        budget = _all_views_budget(medians, app)
        floor_all = medians[(app, "floor_all")]["cpu_us"] - bare_cpu
        ours = medians[(app, "bridge_all")]["cpu_us"] - bare_cpu
        room.append(
            f"{app}: budget {budget:.1f} µs, floor {floor_all:.1f} µs, so {budget - floor_all:.1f} "
            f"µs left for all of otel_bridge's own work (it spends {ours - floor_all:.1f})"
        )
    lines += [
        "",
        "In brackets: the floor (`benchmarks/floor.py`) in the same units. All four views at "
        "1/4 of contrib's overhead: " + "; ".join(room) + ".",
        "",
        "Over HTTP the bare app itself serves "
        + ", ".join(f"{headroom[app]:.2f}x contrib ({app})" for app in APPS)
        + ": where that is near 2, 2x contrib leaves almost nothing for the instrumentation.",
        "",
    ]
    return lines


def _all_views_budget(medians: dict[tuple[str, str], dict[str, float]], app: str) -> float:
    """Target 1: µs over the bare app that all views may cost, 1/4 of contrib's overhead."""
    bare = medians[(app, "bare")]["cpu_us"]
    return (medians[(app, "contrib")]["cpu_us"] - bare) / 4


def _profile_lines(
    medians: dict[tuple[str, str], dict[str, float]],
    profiled: dict[tuple[str, str], dict[str, float]] | str,
) -> list[str]:
    lines = ["## Where the time goes: a profile of the all-views cells", ""]
    if isinstance(profiled, str):
        return [*lines, f"Not profiled in this run: {profiled}.", ""]
    lines += [
        "Each cell of the in-process table above, run once more under py-spy "
        "(`python -m benchmarks.profile APP CONFIG 60000`: 1,000 samples a second of the thread "
        "holding the GIL, start-up left out). A sample counts for the component of its "
        "innermost frame that has one (`benchmarks/profile.py`): the SDK's `Histogram.record` "
        "called by otel_bridge counts as SDK, a JSON encoder called by the wide-event view as "
        "that view. The shares are applied to the cell's median CPU per request above, so a "
        "row adds up to its `cpu µs`. `gc` is the time in the cyclic garbage collector "
        "(`gc.callbacks`, measured in the table's runs): it has no frame of its own, so py-spy "
        "counts it where the allocation that triggered it was, inside the other columns.",
        "",
        "| app | config | cpu µs | "
        + " | ".join(title for _, title in PROFILE_COLUMNS)
        + " | gc |",
        "|---|---|" + "---:|" * (len(PROFILE_COLUMNS) + 2),
    ]
    for app in APPS:
        for config in PROFILED:
            cpu = medians[(app, config)]["cpu_us"]
            share = profiled[(app, config)]
            cells = [
                f"{share[name] * cpu:.1f}" if share[name] * cpu >= 0.05 else ""
                for name, _ in PROFILE_COLUMNS
            ]
            lines.append(
                f"| {app} | {config} | {cpu:.1f} | "
                + " | ".join(cells)
                + f" | {medians[(app, config)]['gc_us']:.1f} |"
            )
    reach = []
    for app in APPS:
        budget = _all_views_budget(medians, app)
        cpu = medians[(app, "bridge_all")]["cpu_us"]
        share = profiled[(app, "bridge_all")]
        sdk = share["OpenTelemetry SDK + API"] * cpu
        own = sum(share[name] for name in ("otel_bridge core", "Pinba", "wide events", "expvar"))
        reach.append(
            f"{app}: the budget is {budget:.1f} µs over the bare app; the SDK's part of "
            f"`bridge_all` takes {sdk:.1f} of it, which leaves {budget - sdk:.1f} µs for "
            f"otel_bridge's own code and the views' system calls, where they take "
            f"{own * cpu:.1f} now"
        )
    lines += [
        "",
        "Target 1 (all views at 1/4 of contrib's overhead) against this profile: "
        + "; ".join(reach)
        + ".",
        "",
    ]
    return lines


def _scale_lines(scale_result: dict[str, Any], memory_result: dict[str, Any]) -> list[str]:
    timers = scale_result["timers"]
    base = timers[0]["us_per_request"]
    lines = [
        "## Scaling with work",
        "",
        "Per-request cost (all CPU of the process, µs) of a raw ASGI app with expvar, Pinba (to a "
        "reading collector) and wide events on and spans to a discarding BatchSpanProcessor, by "
        "the number of `otel_bridge.timer()` blocks per request:",
        "",
        "| timers | µs per request | µs per timer over none |",
        "|---:|---:|---:|",
    ]
    for cell in timers:
        per = (cell["us_per_request"] - base) / cell["timers"] if cell["timers"] else 0.0
        per_text = f"{per:.1f}" if cell["timers"] else ""
        lines.append(f"| {cell['timers']} | {cell['us_per_request']:.1f} | {per_text} |")
    lines += [
        "",
        "A timer's span is built on the export thread here, equal to the SDK's (the "
        "BatchSpanProcessor is the provider's only other processor); the section \"Timers "
        "against the SDK's own child span\" below compares the cost with the SDK's span.",
        "",
        "`/debug/vars` rendered in-process (the whole body: cmdline, memstats, request "
        "statistics and the variables), median of 21:",
        "",
        "| variables | ms | bytes |",
        "|---:|---:|---:|",
    ]
    for cell in scale_result["vars"]:
        lines.append(f"| {cell['vars']:,} | {cell['median_ms']:.3f} | {cell['bytes']:,} |")
    growth = memory_result["rss_after_all_mb"] - memory_result["rss_after_warmup_mb"]
    objects0, objects1 = memory_result["objects"]
    threads0, threads1 = memory_result["threads"]
    lines += [
        "",
        "## Memory under sustained load",
        "",
        f"{memory_result['requests']:,} requests in-process through a Starlette app with every "
        "view on (Cronitor routes declared, Pinba to a reading collector), two timers, a tag "
        f"and a wide-event field each ({memory_result['us_per_request']:.0f} µs per request):",
        "",
        "| measure | after 10,000 | halfway | after all | change |",
        "|---|---:|---:|---:|---:|",
        f"| RSS MB | {memory_result['rss_after_warmup_mb']:.1f} | "
        f"{memory_result['rss_midway_mb']:.1f} | "
        f"{memory_result['rss_after_all_mb']:.1f} | {growth:+.1f} |",
        f"| live objects (gc) | {objects0:,} | | {objects1:,} | {objects1 - objects0:+,} |",
        f"| threads | {threads0} | | {threads1} | {threads1 - threads0:+} |",
        "",
        "RSS is read under load at both points, with the queues as full as the load keeps them "
        f"(this CPU-bound loop keeps the bridge's queue near its bound, "
        f"{memory_result['queue_size']:,}). Read after draining the queues and a full "
        "collection, it was "
        f"{memory_result['settled_rss_mb'][0]:.1f} and {memory_result['settled_rss_mb'][1]:.1f} "
        "MB: that reading moves by a few MB between runs, depending on whether the allocator "
        "has handed the freed arenas back to the system yet. The queues at their fullest once "
        "raise RSS for good (the allocator keeps the arenas), in one half of the run; a leak "
        "grows both halves.",
        "",
        f"Records dropped: {sum(memory_result['dropped'].values())}; Pinba packets sent "
        f"{memory_result['packets_sent']:,}, received {memory_result['packets_received']:,}.",
        "",
    ]
    return lines


def _own_process(module: str, argument: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", module, argument], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--write", action="store_true", help="write benchmarks/RESULTS.md")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    n, repeats, duration = (2_000, 1, 1) if args.quick else (20_000, 3, 5)
    medians = in_process(n, repeats)
    over_http = over_http_cells(duration, repeats)
    pinba_result = pinba.run(n=2_000 if args.quick else 20_000, repeats=1 if args.quick else 5)
    expvar_result = expvar.run(seconds=1 if args.quick else 3, rounds=1 if args.quick else 3)
    command = "make bench" + (" (python -m benchmarks --quick)" if args.quick else "")
    # Each in an interpreter of its own, as the in-process cells: what the harness itself
    # holds would otherwise weigh on their garbage collections.
    wide_result = _own_process("benchmarks.wide_events", "10000" if args.quick else "50000")
    scale_result = _own_process("benchmarks.scale", "1000" if args.quick else "5000")
    memory_result = _own_process("benchmarks.memory", "20000" if args.quick else "200000")
    profiled = profiles(5_000 if args.quick else 60_000)
    slow_result = slow_clients.run(rounds=repeats, seconds=duration)
    stuck_result = stuck_view.run(rounds=repeats, seconds=duration)
    server_wide_result = server_wide.run(rounds=repeats, seconds=duration)
    # More rounds than the others: one timer a request costs a few µs on a ~45 µs request.
    timer_rounds = repeats if args.quick else timer_cost.ROUNDS
    timers_result = timer_cost.run(rounds=timer_rounds)
    text = render(
        medians,
        over_http,
        pinba_result,
        expvar_result,
        wide_result,
        scale_result,
        memory_result,
        profiled,
        command,
        n,
        repeats,
    )
    text += "\n" + slow_clients.section(slow_result, command)
    text += "\n" + stuck_view.section(stuck_result, command)
    text += "\n" + server_wide.section(server_wide_result, command)
    text += "\n" + timer_cost.section(timers_result, command, timer_rounds)
    print(text)
    if args.write:
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
