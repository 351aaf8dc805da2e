"""One watchdog thread per process: a `timeout` event for any request past its deadline.

It is written by the watchdog itself, synchronously, while the request is still running —
before gunicorn's arbiter kills a stuck sync worker, and for gthread and async workers whose
slow requests gunicorn never kills. It says what the request was doing: its Python stack (the
thread's, or the asyncio task's), the spans still open and for how long, the timers so far and
the app's fields. The request path pays a dict insert and a delete; the thread wakes four
times per deadline.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_bridge.builder import RequestBuilder

__all__ = ["Watchdog", "gunicorn_deadline", "set_gunicorn_timeout"]

STACK_LIMIT = 40
_gunicorn_timeout: float | None = None
# This process's pid, kept current across fork() (os.getpid() is a system call, and add()
# runs on every request).
_pid = [os.getpid()]


def _forked() -> None:
    _pid[0] = os.getpid()


os.register_at_fork(after_in_child=_forked)


def set_gunicorn_timeout(seconds: float | None) -> None:
    """Called by otel_bridge.gunicorn's post_fork: the arbiter's worker timeout."""
    global _gunicorn_timeout
    _gunicorn_timeout = seconds


def gunicorn_deadline() -> float | None:
    """Our deadline under gunicorn: its timeout minus a margin to write the event in time."""
    if not _gunicorn_timeout:
        return None
    margin = min(max(1.0, 0.1 * _gunicorn_timeout), _gunicorn_timeout / 2)
    return _gunicorn_timeout - margin


def stack_of(builder: RequestBuilder) -> str:
    """The request's stack: where its app code runs (a view's thread or task, when the
    framework hands it one), else its asyncio task's if it has one, else its thread's."""
    view_thread = builder.view_thread
    if view_thread is not None:
        frame = sys._current_frames().get(view_thread)
        if frame is not None:
            return "".join(traceback.format_stack(frame, limit=STACK_LIMIT))
    task = builder.view_task or builder.task
    if task is not None:
        try:
            return _await_chain(task.get_coro())
        except Exception:  # noqa: BLE001 - fall back to the thread's stack
            pass
    frame = sys._current_frames().get(builder.thread_id)
    if frame is None:
        return ""
    return "".join(traceback.format_stack(frame, limit=STACK_LIMIT))


def _await_chain(coroutine: Any) -> str:
    # A suspended task has no thread stack: follow what each coroutine awaits, outermost
    # first, down to the one actually waiting (the innermost frames are the useful ones).
    summaries: list[traceback.FrameSummary] = []
    while coroutine is not None and len(summaries) < 1000:
        frame = (
            getattr(coroutine, "cr_frame", None)
            or getattr(coroutine, "gi_frame", None)
            or getattr(coroutine, "ag_frame", None)
        )
        if frame is not None:
            code = frame.f_code
            summaries.append(traceback.FrameSummary(code.co_filename, frame.f_lineno, code.co_name))
        coroutine = (
            getattr(coroutine, "cr_await", None)
            or getattr(coroutine, "gi_yieldfrom", None)
            or getattr(coroutine, "ag_await", None)
        )
    return "".join(traceback.format_list(summaries[-STACK_LIMIT:]))


class Watchdog:
    """Watches in-flight requests; calls `on_timeout(builder)` once for each one past `deadline`.

    Args:
        deadline: seconds a request may run.
        on_timeout: called on the watchdog thread; must not raise (it is wrapped anyway).
    """

    def __init__(
        self,
        deadline: float | None,
        on_timeout: Callable[[RequestBuilder], None],
        on_loop_blocked: Callable[[dict[str, Any]], None] | None = None,
        stall: float = 1.0,
    ) -> None:
        # No deadline: only the event loop is watched.
        self.deadline_ns = int(deadline * 1e9) if deadline else None
        self.stall_ns = int(stall * 1e9)
        self._interval = max(0.01, min(0.25, (deadline or stall) / 4, stall / 4))
        self._on_timeout = on_timeout
        self._on_loop_blocked = on_loop_blocked
        self._loop: Any = None
        self._loop_thread = 0
        self._ping_sent: int | None = None
        self._pong_at = 0
        self._stall_reported = False
        self._inflight: dict[int, RequestBuilder] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()

    def add(self, builder: RequestBuilder) -> None:
        if self._thread is None or self._pid != _pid[0]:
            self._start()
        if self.deadline_ns is not None or self._loop is not None:
            self._inflight[id(builder)] = builder

    def remove(self, builder: RequestBuilder) -> None:
        self._inflight.pop(id(builder), None)

    def _start(self) -> None:
        # (Re)started lazily, so a bridge built before fork() watches in every worker.
        self._pid = _pid[0]
        self._inflight = {}
        self._stop = threading.Event()
        self._loop = None
        self._ping_sent = None
        thread = threading.Thread(target=self._run, name="otel-bridge-watchdog", daemon=True)
        self._thread = thread
        thread.start()

    def watch_loop(self, loop: Any, thread_id: int) -> None:
        """Also watch an asyncio loop: a loop that runs no callback for `stall` seconds (a
        blocking call in async code) gets one `loop_blocked` report per stall."""
        if self._thread is None or self._pid != _pid[0]:
            self._start()
        self._loop, self._loop_thread = loop, thread_id

    def _pong(self) -> None:
        self._pong_at = time.perf_counter_ns()
        self._stall_reported = False

    def _check_loop(self, now: int) -> None:
        loop = self._loop
        if loop is None or self._on_loop_blocked is None:
            return
        if loop.is_closed():
            self._loop = None
            return
        if self._ping_sent is None or self._pong_at >= self._ping_sent:
            self._ping_sent = now
            loop.call_soon_threadsafe(self._pong)
            return
        blocked = now - self._ping_sent
        if blocked < self.stall_ns or self._stall_reported:
            return
        self._stall_reported = True
        frame = sys._current_frames().get(self._loop_thread)
        stack = "".join(traceback.format_stack(frame, limit=STACK_LIMIT)) if frame else ""
        self._on_loop_blocked(
            {"blocked_ms": round(blocked / 1e6, 3), "stack": stack, "inflight": self.inflight()}
        )

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            now = time.perf_counter_ns()
            try:
                self._check_loop(now)
            except Exception:  # noqa: BLE001 - the watchdog must keep watching
                pass
            if self.deadline_ns is None:
                continue
            for builder in list(self._inflight.values()):
                if builder.timed_out or now - builder.start_ns < self.deadline_ns:
                    continue
                builder.timed_out = True
                try:
                    self._on_timeout(builder)
                except Exception:  # noqa: BLE001 - the watchdog must keep watching
                    pass

    def stop(self) -> None:
        self._stop.set()

    def inflight(self) -> list[Any]:
        return list(self._inflight.values())
