"""What server-wide `requests` costs: per record on the export thread, per poll, and over HTTP.

    python -m benchmarks.server_wide            # print the tables
    python -m benchmarks.server_wide --json     # one JSON object

In-process: the expvar view's counting of a batch of 64 records (50 routes) in one process,
against the same with a scoreboard claim (each worker's figures also written to its table
in shared memory), and rendering `requests`: one process's, against the server's merged from
4 tables (3 workers and the retired one). The request path itself is not in either: records
are counted on the export thread, and no lock is shared with requests.

Over HTTP: gunicorn, 2 sync workers, the WSGI benchmark app with every view on: without
otel_bridge's hooks (no scoreboard), with them but `requests` counted per worker
(BENCH_REQUESTS_PER_WORKER: the rest of the scoreboard, in-flight entries and counters), and
with them as shipped (server-wide `requests`). wrk, 1 thread, 16 connections, 5 s, three
rounds interleaved in rotating order, medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from typing import Any

from benchmarks.http import gunicorn_command, served, wrk
from benchmarks.pinba import sample_record

BATCH = 64
ROUTES = 50


def _records() -> list[Any]:
    base = sample_record()
    return [
        base._replace(route=f"/api/{index % ROUTES}/{{id}}", duration_ns=(index % 40 + 1) * 10**6)
        for index in range(BATCH)
    ]


def _per_record_us(export: Any, records: list[Any], seconds: float = 1.0) -> float:
    batches = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        export(records)
        batches += 1
    return (time.perf_counter() - start) / (batches * len(records)) * 1e6


def _per_call_us(call: Any, seconds: float = 1.0) -> float:
    calls = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        call()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e6


def in_process(rounds: int = 3) -> dict[str, float]:
    from otel_bridge import _routeboard
    from otel_bridge._scoreboard import Scoreboard, set_current
    from otel_bridge.exporters.expvar._stats import RequestStats

    records = _records()
    cells: dict[str, list[float]] = {
        "count_process_us": [],
        "count_server_us": [],
        "render_process_us": [],
        "render_server_us": [],
        "request_path_us": [],
    }
    board = Scoreboard.create(16)
    try:
        for _ in range(rounds):
            set_current(None, None)
            alone = RequestStats()
            cells["count_process_us"].append(_per_record_us(alone.export, records))
            cells["render_process_us"].append(_per_call_us(alone.render))
            # Three workers' tables and the retired one, as a 3-worker server after a while.
            for slot in range(3):
                mirror = _routeboard.RouteMirror()
                with mirror.lock:
                    RequestStats._count(records, mirror.figures_for, mirror.total, False)
                    mirror.publish(board.buffer, board.table(slot))
            board.write(2, 1, 1, [0] * 8)
            board.release(2)
            set_current(board, 0)
            _routeboard._mirror = None
            shared = RequestStats()
            cells["count_server_us"].append(_per_record_us(shared.export, records))
            cells["render_server_us"].append(_per_call_us(shared.render_server))

            # What the request path does with the scoreboard (the bridge's begin/finish):
            # take an in-flight entry, free it, count the request answered.
            def request(answered: list[int] = [0]) -> None:  # noqa: B006 - a counter
                entry = board.begin_request(0, 1, "/api/1/42", "0af7651916cd43dd")
                board.end_request(0, entry)
                answered[0] += 1
                board.set_answered(0, answered[0])

            cells["request_path_us"].append(_per_call_us(request))
    finally:
        set_current(None, None)
        board.close()
    return {name: statistics.median(values) for name, values in cells.items()}


# name: (the hooks on, `requests` server-wide)
HTTP_CELLS = {
    "no scoreboard": (False, False),
    "scoreboard, requests per worker": (True, False),
    "scoreboard, requests server-wide": (True, True),
}


def _http_cell(hooks: bool, server_wide: bool, seconds: int) -> dict[str, float]:
    extra = {} if server_wide else {"BENCH_REQUESTS_PER_WORKER": "1"}
    with served(
        "wsgi",
        "bridge_all",
        extra,
        command=lambda port: gunicorn_command(port, workers=2, hooks=hooks),
    ) as port:
        wrk(port, 1)  # warm up
        return wrk(port, seconds)


def over_http(rounds: int = 3, seconds: int = 5) -> dict[str, dict[str, float]]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: scripts/system-deps wrk")
    names = list(HTTP_CELLS)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_ in range(rounds):
        # The order rotates, so that no cell always meets a cold (or warm) machine.
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            runs[name].append(_http_cell(*HTTP_CELLS[name], seconds))
    return {
        name: {key: statistics.median(cell[key] for cell in cells) for key in cells[0]}
        for name, cells in runs.items()
    }


def run(rounds: int = 3, seconds: int = 5) -> dict[str, Any]:
    return {"in_process": in_process(rounds), "http": over_http(rounds, seconds)}


def section(result: dict[str, Any], command: str) -> str:
    """The RESULTS.md section for `result`."""
    cells = result["in_process"]
    http = result["http"]
    base = http["no scoreboard"]
    lines = [
        "## Server-wide `requests` under a multi-process server",
        "",
        "The server-wide figures are counted on each worker's export thread and written to",
        "its own table: the request path does nothing more for them. With the scoreboard the",
        "request path only takes and frees its in-flight entry (one uncontended lock of the",
        "worker's own, for the in-flight count). Median of 3 rounds. Command: "
        f"`{command}` (alone: `python -m benchmarks.server_wide`).",
        "",
        f"| export thread, batches of {BATCH} records over {ROUTES} routes | µs per record |",
        "|---|---:|",
        f"| one process (`requests` in its own memory) | {cells['count_process_us']:.2f} |",
        f"| a worker with the scoreboard (also written to its table) "
        f"| {cells['count_server_us']:.2f} |",
        "",
        "| request path, with the scoreboard (in-flight entry taken and freed, request "
        f"counted answered) | {cells['request_path_us']:.2f} µs per request |",
        "",
        f"| rendering `requests` ({ROUTES} routes) | µs per poll |",
        "|---|---:|",
        f"| one process's | {cells['render_process_us']:.0f} |",
        f"| the server's, merged from 3 workers' tables and the retired one "
        f"| {cells['render_server_us']:.0f} |",
        "",
        "| gunicorn, 2 sync workers, all views, /hello | req/s | vs no scoreboard "
        "| vs the row above | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    above = base
    for name, cell in http.items():
        lines.append(
            f"| {name} | {cell['rps']:,.0f} | {cell['rps'] / base['rps']:.2f} "
            f"| {cell['rps'] / above['rps']:.2f} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} |"
        )
        above = cell
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    options = parser.parse_args()
    result = run(options.rounds, options.seconds)
    print(json.dumps(result, indent=2) if options.json else section(result, "(alone)"))


if __name__ == "__main__":
    main()
