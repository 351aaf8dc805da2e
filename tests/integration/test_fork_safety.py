"""Fork safety under gunicorn: worker recycling (`--max-requests`), a SIGHUP reload and
`--preload` keep every view working — each request still becomes exactly one wide event and
one Pinba packet, the server-wide totals in /debug/vars count them all, and no worker is left
with a dead exporter thread or a stale socket. Files we create in /dev/shm and /tmp are
readable by their owner only."""

from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import httpx
import pytest

from .servers import free_port, gunicorn, serve, wait_for
from .test_faults import ab, lines, udp_collector

pytestmark = pytest.mark.integration


def totals(port: int) -> int:
    document = httpx.get(f"http://127.0.0.1:{port}/debug/vars", timeout=10).json()
    return int(document["server"]["total"]["requests"])


def worker_pids(port: int) -> set[int]:
    """The workers the server-wide scoreboard lists (the master's other children, such as
    gunicorn's control-socket process, are not workers)."""
    document = httpx.get(f"http://127.0.0.1:{port}/debug/vars", timeout=10).json()
    return {int(worker["pid"]) for worker in document["server"]["workers"]}


def owned_files(since: float) -> dict[Path, tuple[int, int]]:
    """(mode, owner) of the files otel_bridge may create in /dev/shm and /tmp: the scoreboard
    (a SharedMemory segment, psm_*, or otel_bridge_* under uvicorn's supervisor) and Cronitor's
    claim files."""
    found: dict[Path, tuple[int, int]] = {}
    for directory in (Path("/dev/shm"), Path("/tmp")):
        for path in directory.iterdir():
            if not path.name.startswith(("psm_", "otel_bridge", "otel-bridge")):
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue  # removed meanwhile
            if info.st_mtime >= since - 1:
                found[path] = (info.st_mode, info.st_uid)
    return found


@pytest.mark.parametrize("preload", [False, True], ids=["fork", "preload"])
def test_recycled_and_reloaded_workers_keep_every_view(preload: bool, tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "events.jsonl"
    extra = ["--workers", "2", "--max-requests", "40", "--max-requests-jitter", "10"]
    if preload:
        extra.append("--preload")
    started = time.time()
    with udp_collector() as (collector, received):
        env = {
            "OTEL_BRIDGE_EXPORTERS": "expvar,pinba,wide_events",
            "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{collector.getsockname()[1]}",
            "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        }
        args = gunicorn("tests.integration.load_wsgi:wsgi_app", port, *extra)
        with serve(args, port, env) as process:
            assert ab(port, 300, 4)["failed"] == 0  # every worker recycled several times
            before_reload = worker_pids(port)
            process.send_signal(signal.SIGHUP)  # reload: a new generation of workers
            assert wait_for(lambda: not (worker_pids(port) & before_reload), 20)
            assert ab(port, 300, 4)["failed"] == 0
            assert wait_for(lambda: lines(events) >= 600 and received[0] >= 600, 20)
            assert wait_for(lambda: totals(port) >= 600, 10)
            counted = totals(port)
            ours = owned_files(started)
    assert lines(events) == 600, "one wide event per request, across recycling and reload"
    assert received[0] == 600, "one Pinba packet per request"
    assert counted == 600, "server totals count requests of recycled workers too"
    assert any(path.parent == Path("/dev/shm") for path in ours), "the scoreboard's segment"
    for path, (mode, uid) in ours.items():
        assert stat.S_IMODE(mode) & 0o077 == 0, f"{path} is {oct(stat.S_IMODE(mode))}"
        assert uid == os.getuid()
