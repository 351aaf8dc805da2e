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

import logging
import time
from typing import Any

from otel_bridge._scoreboard import COUNTERS, Scoreboard, set_current
from otel_bridge._watchdog import set_gunicorn_timeout

__all__ = ["child_exit", "on_exit", "on_starting", "post_fork", "pre_fork"]

logger = logging.getLogger("otel_bridge")
_board: Scoreboard | None = None


def on_starting(server: Any) -> None:
    """Master, before anything is loaded or forked: create the scoreboard."""
    global _board
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


def child_exit(server: Any, worker: Any) -> None:
    """Master, when a worker exited (even SIGKILLed): keep its counts, free its slot."""
    slot = getattr(worker, "otel_bridge_slot", None)
    if _board is not None and slot is not None:
        _board.release(slot)


def on_exit(server: Any) -> None:
    """Master, on shutdown: remove the segment (nothing is left in /dev/shm)."""
    global _board
    if _board is not None:
        _board.close()
        _board = None
