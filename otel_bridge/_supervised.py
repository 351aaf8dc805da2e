"""The shared scoreboard of `uvicorn --workers`, whose supervisor runs none of our code.

The workers share one segment named after the supervisor's pid, each claiming a slot under a
file lock on it. The first worker creates it; each one folds its figures into the retired
ones when it stops (or the next one to start does, for a worker that was killed), and the
last one out removes it.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
from multiprocessing import shared_memory
from typing import Any

from otel_bridge._scoreboard import COUNTERS, VERSION, Scoreboard

__all__ = ["join_supervised", "leave_supervised"]


def join_supervised(slots: int = 64) -> tuple[Scoreboard, int] | None:
    """For workers of a supervisor that runs none of our code (`uvicorn --workers`): share one
    segment named after the supervisor's pid, each worker claiming a slot under a file lock.

    The first worker creates the segment, every worker clears its slot when it stops, and the
    last one out removes the segment. Returns the claim, or None where this cannot work (no
    /dev/shm, not a supervised process). Never raises.
    """
    if multiprocessing.parent_process() is None or not os.path.isdir("/dev/shm"):
        return None
    name = f"otel_bridge_{os.getppid()}"
    try:
        try:
            memory = _untracked(name, create=True, size=Scoreboard.size_for(slots))
            created = True
        except FileExistsError:
            memory = _untracked(name, create=False, size=0)
            created = False
        if Scoreboard.version_of(memory.buf) not in (None, VERSION):
            memory.close()
            return None  # another otel_bridge version's segment: per-process views only
        board = Scoreboard(memory, Scoreboard.slots_for(memory.size), owner=False)
        descriptor = os.open(f"/dev/shm/{name}", os.O_RDWR)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            taken = board.pids()
            if not created and not any(_alive(pid) for pid in taken.values()):
                # Left behind by workers that were all killed outright (or by an earlier
                # server whose pid was reused): start from zero, not from their totals.
                board.reset()
                taken = {}
            if Scoreboard.version_of(board._buffer) is None:
                board.write_header()
            claimed = None
            for slot in range(board.slots):
                pid = taken.get(slot, 0)
                if pid and _alive(pid):
                    continue
                if pid:
                    board.release(slot)  # a worker that died: keep its counts as retired
                claimed = slot
                break
            if claimed is None:
                return None
            board.write(claimed, os.getpid(), time.time_ns(), [0] * len(COUNTERS))
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)
        return board, claimed
    except Exception:  # noqa: BLE001 - per-process views only, never a failed start
        return None


def _untracked(name: str, create: bool, size: int) -> shared_memory.SharedMemory:
    """The segment, kept out of Python's resource tracker: it would remove the segment when
    *one* worker exits, and the workers manage its life among themselves. (Registering, then
    unregistering, is not enough: the workers share the supervisor's tracker, and two that
    start together both register the one name before either unregisters it; the second
    unregistering then makes the tracker print a KeyError traceback at the server's stop.)"""
    try:
        # Python 3.13+: not tracked when asked.
        return shared_memory.SharedMemory(name=name, create=create, size=size, track=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        pass
    # Before 3.13 the constructor always registers, through its module's `resource_tracker`:
    # that module's reference (only) points elsewhere for the call, at the worker's start.
    with _UNTRACKED:
        tracker = shared_memory.resource_tracker  # type: ignore[attr-defined]
        shared_memory.resource_tracker = _NoTracker  # type: ignore[attr-defined]
        try:
            return shared_memory.SharedMemory(name=name, create=create, size=size)
        finally:
            shared_memory.resource_tracker = tracker  # type: ignore[attr-defined]


_UNTRACKED = threading.Lock()


class _NoTracker:
    """What `SharedMemory` sees as `resource_tracker` while `_untracked` makes a segment (a
    failed creation unregisters it too)."""

    @staticmethod
    def register(name: Any, rtype: str) -> None:
        pass

    @staticmethod
    def unregister(name: Any, rtype: str) -> None:
        pass


def leave_supervised(board: Scoreboard, slot: int) -> None:
    """This worker stops: fold its counts into the retired totals; the last one out removes
    the segment. Never raises."""

    try:
        descriptor = os.open(f"/dev/shm/{board.name.lstrip('/')}", os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        board.release(slot)
        others = [pid for pid in board.pids().values() if _alive(pid)]
        if not others:
            # Not SharedMemory.unlink(): it also unregisters the segment from Python's
            # resource tracker, which never knew it (`_untracked`), and the tracker then
            # prints a KeyError traceback at the stop.
            import _posixshmem  # type: ignore[import-not-found]

            _posixshmem.shm_unlink(board.memory._name)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        pass
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
