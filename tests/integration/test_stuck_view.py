"""One stuck view, served as users deploy: uvicorn writing wide events to its stdout, a pipe
nobody reads (a container runtime's log pipe under back-pressure). Every response stays the
app's, the other views get every record, the stuck view's losses are counted under its name,
memory stays bounded, and when the pipe is read again the view recovers. Latency is measured
side by side in benchmarks/stuck_view.py, not asserted here."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.integration.servers import free_port, serve, uvicorn, wait_for
from tests.integration.test_faults import ab, udp_collector

REQUESTS = 5_000


def document(port: int) -> dict[str, Any]:
    got: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/debug/vars", timeout=10).json()
    return got


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_stuck_sink_holds_up_only_its_own_view_and_recovers(tmp_path: Path) -> None:
    with udp_collector() as (pinba, packets):
        port = free_port()
        env = {
            "OTEL_BRIDGE_EXPORTERS": "expvar,pinba,wide_events",
            "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba.getsockname()[1]}",
            "OTEL_EXPORTER_WIDE_EVENTS_SINK": "stdout",  # serve() pipes it, and reads nothing
        }
        with serve(uvicorn("tests.integration.fault_app:app", port), port, env) as process:
            result = ab(port, REQUESTS, 16)
            assert result["complete"] == REQUESTS and result["non_2xx"] == 0
            # The other views: every record.
            assert wait_for(lambda: packets[0] >= REQUESTS)
            assert wait_for(lambda: document(port)["requests"]["total"]["count"] == REQUESTS)
            stuck = document(port)["otel_bridge"]
            # The stuck one: behind, its losses counted under its own name, its queue bounded.
            lane = stuck["views"]["wide_events"]
            assert lane["behind"] is True
            assert 0 < lane["queued"] <= 4096  # OTEL_BRIDGE_QUEUE_SIZE's default
            assert stuck["dropped"]["view.wide_events"] >= REQUESTS - 4096 - 1000
            assert set(stuck["dropped"]) == {"view.wide_events"}
            assert stuck["views"]["pinba"] == {"queued": 0, "behind": False}
            # Memory stays bounded however long it is stuck: 5,000 more requests, the queue
            # already full, grow nothing.
            before = rss(process.pid)
            assert ab(port, REQUESTS, 16)["complete"] == REQUESTS
            assert wait_for(lambda: packets[0] >= 2 * REQUESTS)
            assert rss(process.pid) - before < 8 << 20
            assert document(port)["otel_bridge"]["views"]["wide_events"]["queued"] <= 4096
            # The pipe is read again: the view catches up and takes records again.
            assert process.stdout is not None
            lines = [0]

            def read(stream: Any = process.stdout) -> None:
                for _ in stream:
                    lines[0] += 1

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            assert wait_for(
                lambda: (
                    document(port)["otel_bridge"]["views"]["wide_events"]
                    == {"queued": 0, "behind": False}
                )
            )
            caught_up = lines[0]
            ab(port, 100, 4)
            assert wait_for(lambda: lines[0] >= caught_up + 100)
            process.send_signal(signal.SIGTERM)
            process.wait(20)
            reader.join(5)
            assert process.stderr is not None
            stderr = process.stderr.read()
    said = [line for line in stderr.splitlines() if "view wide_events" in line]
    assert len(said) == 2, stderr[-3000:]  # once when it fell behind, once when it caught up
    assert "not keeping up" in said[0] and "keeping up again" in said[1]
