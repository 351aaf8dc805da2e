"""`otel-bridge vars URL`: a terminal view of a running app's `/debug/vars` (a small expvarmon).

Polls the endpoint and prints memory, GC, request rate and latency per route, and the bridge's
health. Works against any Go-style expvar endpoint; the request and bridge sections appear when
the app runs otel_bridge.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, TextIO

__all__ = ["fetch", "render", "watch"]


def fetch(url: str, token: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """GET the endpoint and parse it.

    Raises:
        OSError: the endpoint cannot be reached or does not answer 200 with JSON.
    """
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def _bytes(value: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return str(value)


def render(
    document: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
    elapsed: float = 0.0,
) -> str:
    """One screen of text for `document` (rates need the `previous` poll)."""
    lines: list[str] = []
    cmdline = document.get("cmdline") or ["?"]
    lines.append(f"{' '.join(str(part) for part in cmdline)[:100]}")
    stats = document.get("memstats") or {}
    if stats:
        num_gc = int(stats.get("NumGC", 0))
        last_pause = stats.get("PauseNs", [0] * 256)[(num_gc + 255) % 256] if num_gc else 0
        lines.append(
            f"memory  Alloc {_bytes(stats.get('Alloc', 0))}  Sys {_bytes(stats.get('Sys', 0))}"
            f"  HeapInuse {_bytes(stats.get('HeapInuse', 0))}  objects "
            f"{stats.get('HeapObjects', 0):,}"
        )
        lines.append(
            f"gc      collections {num_gc:,}  last pause {last_pause / 1e6:.2f} ms  total "
            f"{stats.get('PauseTotalNs', 0) / 1e6:.1f} ms  cpu fraction "
            f"{float(stats.get('GCCPUFraction', 0)):.4f}"
        )
    server = document.get("server")
    workers = server.get("workers") if isinstance(server, Mapping) else None
    if isinstance(server, Mapping) and isinstance(workers, list):
        # A multi-process server: its totals, and which worker this answer came from.
        total = server.get("total") or {}
        rate = ""
        if previous and elapsed > 0:
            before = ((previous.get("server") or {}).get("total") or {}).get("requests", 0)
            rate = f"  {(total.get('requests', 0) - before) / elapsed:.1f} req/s"
        answered: Mapping[str, Any] = next(
            (w for w in workers if w.get("slot") == server.get("this_worker_slot")), {}
        )
        busy = sum(1 for w in workers if w.get("busy"))
        lines.append(
            f"server  {len(workers)} workers ({busy} busy)  requests {total.get('requests', 0):,}"
            f"{rate}  errors {total.get('errors', 0):,}  lost {server.get('records_lost', 0):,}"
            f"  answered by pid {answered.get('pid', '?')} (slot "
            f"{server.get('this_worker_slot', '?')})"
        )
    requests = document.get("requests")
    if isinstance(requests, Mapping):
        total = requests.get("total", {})
        rate = ""
        if previous and elapsed > 0:
            before = (previous.get("requests") or {}).get("total", {}).get("count", 0)
            rate = f"  {(total.get('count', 0) - before) / elapsed:.1f} req/s"
        scope = requests.get("scope")
        mine = {"server": "  (server: every worker)", "worker": "  (this worker)"}.get(
            str(scope), "  (this worker)" if isinstance(workers, list) else ""
        )
        lines.append(
            f"requests {total.get('count', 0):,}{rate}  errors {total.get('errors', 0):,}  "
            f"5xx {total.get('5xx', 0):,}{mine}"
        )
        lines.append(f"  {'route':<40} {'count':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        routes = sorted(
            (requests.get("by_route") or {}).items(), key=lambda item: -item[1].get("count", 0)
        )
        for name, route in routes[:15]:
            lines.append(
                f"  {name[:40]:<40} {route.get('count', 0):>8,} "
                f"{route.get('duration_ms_p50', 0):>8.2f} {route.get('duration_ms_p99', 0):>8.2f}"
                f" {route.get('duration_ms_max', 0):>8.2f}"
            )
    bridge = document.get("otel_bridge")
    if isinstance(bridge, Mapping):
        errors = sum((bridge.get("errors") or {}).values())
        dropped = sum((bridge.get("dropped") or {}).values())
        views = ", ".join(bridge.get("exporters", []))
        lines.append(
            f"bridge  queue {bridge.get('queue_depth', 0)}  errors {errors}  dropped {dropped}"
            f"  views {views}"
        )
    return "\n".join(lines) + "\n"


def watch(
    url: str,
    *,
    token: str | None = None,
    interval: float = 2.0,
    once: bool = False,
    out: TextIO = sys.stdout,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Poll and print until interrupted; with `once`, print one screen. Returns an exit code."""
    previous: dict[str, Any] | None = None
    previous_at = 0.0
    try:
        while True:
            try:
                document = fetch(url, token)
            except (OSError, ValueError) as exc:
                print(f"cannot read {url}: {exc}", file=sys.stderr)
                if once:
                    return 1
                sleep(interval)
                continue
            now = time.monotonic()
            text = render(document, previous, now - previous_at if previous else 0.0)
            if not once:
                out.write("\x1b[2J\x1b[H")  # clear the screen, as a live view
            out.write(text)
            out.flush()
            if once:
                return 0
            previous, previous_at = document, now
            sleep(interval)
    except KeyboardInterrupt:
        return 0
