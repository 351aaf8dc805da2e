"""One stuck view against the app's latency and the other views, side by side in one run.

    python -m benchmarks.stuck_view            # print the table
    python -m benchmarks.stuck_view --json     # one JSON object

uvicorn serves the Starlette app with every view on (BENCH_CONFIG=bridge_all). wrk measures
/hello (1 thread, 32 connections, 5 s) with the wide-event sink healthy (JSON Lines to
/dev/null), then stuck: the sink is the server's stdout, a pipe nobody reads, as a container
runtime's log pipe under back-pressure. Three rounds, interleaved; medians reported. The
stuck cell also shows what `/debug/vars` counted: requests (the expvar view kept up) and the
wide events dropped under the stuck view's own name.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
from typing import Any

import httpx

from benchmarks.http import served, wrk


def _wrk(port: int, seconds: int) -> dict[str, float]:
    return wrk(port, seconds, connections=32)


def _counted(port: int) -> dict[str, float]:
    document = httpx.get(f"http://127.0.0.1:{port}/debug/vars", timeout=10).json()
    bridge = document["otel_bridge"]
    return {
        "expvar_requests": float(document["requests"]["total"]["count"]),
        "events_dropped": float(bridge["dropped"].get("view.wide_events", 0)),
    }


def _cell(sink: str, seconds: int) -> dict[str, float]:
    stuck = sink == "stdout"
    extra = {"BENCH_WIDE_EVENTS_SINK": sink}
    # The stuck sink: a pipe this process never reads (64 KiB fill it within a second).
    with served("starlette", "bridge_all", extra, subprocess.PIPE if stuck else None) as port:
        _wrk(port, 1)  # warm up (and, stuck, fill the pipe)
        before = _counted(port)
        cell = _wrk(port, seconds)
        after = _counted(port)
    cell["expvar_share"] = (after["expvar_requests"] - before["expvar_requests"]) / max(
        1.0, cell["requests"]
    )
    cell["events_dropped"] = after["events_dropped"] - before["events_dropped"]
    return cell


def run(rounds: int = 3, seconds: int = 5) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: scripts/system-deps wrk")
    runs: dict[str, list[dict[str, float]]] = {"healthy": [], "wide events stuck": []}
    for _ in range(rounds):
        runs["healthy"].append(_cell("file:/dev/null", seconds))
        runs["wide events stuck"].append(_cell("stdout", seconds))
    return {
        name: {key: statistics.median(r[key] for r in cells) for key in cells[-1]}
        for name, cells in runs.items()
    }


def table(result: dict[str, Any]) -> str:
    healthy = result["healthy"]
    lines = [
        "| uvicorn, all views, /hello | req/s | p50 ms | p99 ms | p99 vs healthy "
        "| bound (1.5x + 2 ms) | requests in /debug/vars | wide events dropped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bound = 1.5 * healthy["p99_ms"] + 2
    for name, cell in result.items():
        ratio = cell["p99_ms"] / healthy["p99_ms"]
        lines.append(
            f"| {name} | {cell['rps']:,.0f} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} "
            f"| {ratio:.2f}x | {'within' if cell['p99_ms'] <= bound else 'OVER'} "
            f"| {cell['expvar_share']:.1%} | {cell['events_dropped']:,.0f} |"
        )
    return "\n".join(lines)


def section(result: dict[str, Any], command: str) -> str:
    """The RESULTS.md section for `result`."""
    return "\n".join(
        [
            "## One stuck view",
            "",
            "The wide-event sink blocked (the server's stdout, a pipe nobody reads) against the",
            "same server with the sink healthy, under wrk at 32 connections; median of 3 rounds,",
            f"interleaved. Command: `{command}`.",
            "",
            table(result),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    options = parser.parse_args()
    result = run(options.rounds, options.seconds)
    print(json.dumps(result, indent=2) if options.json else table(result))


if __name__ == "__main__":
    main()
