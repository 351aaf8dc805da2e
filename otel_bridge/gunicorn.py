"""gunicorn server hooks: a shared-memory scoreboard so `/debug/vars` shows server totals.

Use as gunicorn's config module, or import the hooks into your own `gunicorn.conf.py`
(calling yours and ours if you have some):

    gunicorn -c python:otel_bridge.gunicorn -w 4 shop.wsgi
    # gunicorn.conf.py
    from otel_bridge.gunicorn import child_exit, on_exit, on_starting, post_fork, pre_fork

Each function has gunicorn's exact hook name and signature. None of them raises into gunicorn:
a failure leaves the workers without server totals (counted, logged once).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import struct
import threading
import time
from typing import Any

from otel_bridge._scoreboard import COUNTERS, Scoreboard, set_current, set_master
from otel_bridge._secrets import redact_path
from otel_bridge._watchdog import set_gunicorn_timeout

__all__ = ["child_exit", "on_exit", "on_starting", "post_fork", "pre_fork", "when_ready"]

logger = logging.getLogger("otel_bridge")
_board: Scoreboard | None = None
_monitor: _Monitor | None = None


def on_starting(server: Any) -> None:
    """Master, before anything is loaded or forked: create the scoreboard."""
    global _board
    set_master(os.getpid())  # the server's identity, for its workers too (Cronitor's claim)
    try:
        workers = int(getattr(server.cfg, "workers", 1) or 1)
        # Room for workers added later with TTIN, and for the ones being replaced.
        _board = Scoreboard.create(max(16, 4 * workers))
    except Exception as exc:  # noqa: BLE001 - the server must start regardless
        logger.warning("otel_bridge: no shared scoreboard (%s); per-worker views only", exc)
        _board = None


def pre_fork(server: Any, worker: Any) -> None:
    """Master, before each fork: reserve the worker's slot."""
    if _board is not None:
        worker.otel_bridge_slot = _board.assign()


def post_fork(server: Any, worker: Any) -> None:
    """Worker, right after fork: claim the slot inherited from the master."""
    slot = getattr(worker, "otel_bridge_slot", None)
    set_current(_board, slot)
    timeout = getattr(server.cfg, "timeout", None)
    set_gunicorn_timeout(float(timeout) if timeout else None)
    if _board is not None and slot is not None:
        _board.write(slot, worker.pid, time.time_ns(), [0] * len(COUNTERS))


def when_ready(server: Any) -> None:
    """Master, listeners bound: start the monitor (worker RSS, listen backlog, once a second)."""
    global _monitor
    if _board is None or _monitor is not None:
        return
    _monitor = _Monitor(_board, list(getattr(server, "LISTENERS", []) or []))
    _monitor.start()


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker exited (even SIGKILLed): report the request it died in (if it
    wrote no timeout event for it), keep its counts, free its slot."""
    slot = getattr(worker, "otel_bridge_slot", None)
    if _board is None or slot is None:
        return
    try:
        in_progress = _board.in_progress(slot)
        # Answered, but not yet with every view when it died (counted server-wide).
        records_lost = _board.release(slot)
        _report_exit(worker.pid, slot, in_progress, records_lost)
    except Exception as exc:  # noqa: BLE001 - never break the arbiter
        logger.warning(
            "otel_bridge: could not report worker %s's lost request: %s",
            getattr(worker, "pid", "?"),
            exc,
        )
        _board.release(slot)


def _report_exit(pid: int, slot: int, in_progress: list[dict[str, Any]], records_lost: int) -> None:
    """A `worker_killed` event for each request the worker died in (async and threaded
    workers serve several), or, when it died between requests with records still on their
    way, a `worker_exit` event. The first event says how many answered requests' records no
    view got."""
    if not in_progress and not records_lost:
        return
    from otel_bridge.config import Settings
    from otel_bridge.exporters.wide_events._sinks import make_sink

    settings = Settings.from_env()
    if "wide_events" not in settings.exporters:
        return
    requests: list[dict[str, Any] | None] = list(in_progress) or [None]
    events = [
        _exit_event(settings.service_name, pid, slot, lost, records_lost if index == 0 else 0)
        for index, lost in enumerate(requests)
    ]
    sink = make_sink(settings.wide_events_sink, settings.wide_events_format)
    try:
        sink.write([{k: v for k, v in event.items() if v is not None} for event in events])
    finally:
        sink.close()


def _exit_event(
    service: str | None, pid: int, slot: int, lost: dict[str, Any] | None, records_lost: int
) -> dict[str, Any]:
    now = time.time_ns()
    started = lost["start_ns"] if lost is not None and "start_ns" in lost else now
    event: dict[str, Any] = {
        "timestamp": datetime.datetime.fromtimestamp(started / 1e9, datetime.UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z"),
        "event": "worker_killed" if lost is not None else "worker_exit",
        "service.name": service,
        "process.pid": pid,
        "worker.slot": slot,
        "worker.records_lost": records_lost,
    }
    if lost is not None and "unlisted" in lost:
        # Requests beyond the scoreboard's entries: counted, not described.
        event.update({"worker.requests_unlisted": lost["unlisted"], "error.type": "worker_killed"})
    elif lost is not None:
        event.update(
            {
                "request.id": lost["request_id"],
                "url.path": redact_path(lost["path"]),
                "duration_ms": round((now - started) / 1e6, 3),
                "error.type": "worker_killed",
            }
        )
    return event


class _Monitor(threading.Thread):
    def __init__(self, board: Scoreboard, listeners: list[Any]) -> None:
        super().__init__(name="otel-bridge-monitor", daemon=True)
        self.board = board
        self.listeners = listeners
        self.stopping = threading.Event()

    def run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        # At once, then every second: until the first sample the figures are unknown (absent).
        while True:
            try:
                for slot, pid in self.board.pids().items():
                    try:
                        with open(f"/proc/{pid}/statm", "rb") as statm:
                            self.board.set_rss(slot, int(statm.read().split()[1]) * page)
                    except (OSError, ValueError, IndexError):
                        continue
                self.board.set_server(_backlog(self.listeners), time.time_ns())
            except Exception:  # noqa: BLE001 - a monitoring hiccup must not end the thread
                pass
            if self.stopping.wait(1.0):
                return


def _backlog(listeners: list[Any]) -> int:
    # Linux TCP_INFO on a listening socket: tcpi_unacked is the accept queue's length.
    total = 0
    for listener in listeners:
        sock = getattr(listener, "sock", listener)
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            total += struct.unpack_from("<I", info, 24)[0]
        except (OSError, AttributeError, struct.error):
            continue
    return total


def on_exit(server: Any) -> None:
    """Master, on shutdown: remove the segment (nothing is left in /dev/shm)."""
    global _board, _monitor
    from otel_bridge.exporters.cronitor._sync import claim_file

    try:
        os.unlink(claim_file(os.getpid()))  # this server's Cronitor startup-sync claim
    except OSError:
        pass
    if _monitor is not None:
        _monitor.stopping.set()
        _monitor = None
    if _board is not None:
        _board.close()
        _board = None
