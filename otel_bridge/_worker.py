"""One background thread per process that hands finished records to the exporters.

The request path only appends to a bounded deque (O(1), no lock taken when the thread is
awake). When the deque is full, the request thread waits for room, up to `BACKPRESSURE_S`:
a process whose request threads keep the CPU (and the GIL) busy would otherwise starve the
export thread and lose records exactly under load. If the thread makes no room in that time,
the record is dropped and counted, and requests stop waiting until the thread finishes a batch
again: a thread stuck in one batch costs one wait, not one per request (nor one a second),
while one slow batch (a full garbage collection) costs the records of that batch's time only.
The views never hold this thread up: each one that may block has a lane of its own
(`_lanes`).
The thread starts lazily on the first record and is restarted in a forked child (PID check),
so a bridge created in a gunicorn master before `fork()` works in every worker.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from otel_bridge._health import Health

__all__ = ["Worker", "run_bounded"]

T = TypeVar("T")

# Items handed to `handle` at once.
BATCH_SIZE = 64
# The thread wakes when this many items wait, or every INTERVAL_S, whichever comes first.
# Waking it per request would cost a thread switch (and a GIL hand-off) per request, more
# than the export work itself; batching keeps the request path to one deque append.
# The thread never gives the GIL up between batches on its own (sleep(0)): the interpreter
# already hands it to a waiting thread every switch interval (5 ms), and each voluntary
# hand-off cost more than the batch — measured with a CPU-bound request loop
# (benchmarks/inprocess.py, WSGI): 52 µs per request yielding after every batch of 16,
# 48 yielding every 1 ms, 34 never yielding. Fewer records waiting also means fewer of them
# survive into the garbage collector's older generations.
WAKE_AT = 64
# ... or when the items waiting hold this many child spans (`submit`'s weight): a request's
# spans stay alive until its batch is handled, and a batch of span-heavy requests kept tens
# of thousands of objects for the collector to walk (-1.4 µs of GC per timer at 100 timers
# a request, benchmarks.timers `other`). The SDK's BatchSpanProcessor wakes at 512 too.
WAKE_WEIGHT = 512
INTERVAL_S = 0.1
# How often flush() re-checks while it waits.
IDLE_WAIT_S = 0.05
# How long a request waits for room in a full queue. After such a wait found none, requests
# wait again only once the thread has finished a batch since.
BACKPRESSURE_S = 0.05


class Worker(Generic[T]):
    """Bounded queue plus the thread that drains it into `handle`, in batches.

    Items wait at most `INTERVAL_S` (0.1 s) before they are handled; `flush()` hands over
    everything at once.

    Args:
        handle: called on the worker thread with each batch (oldest first). Exceptions are
            counted as ``worker`` errors; the thread keeps running.
        maxsize: queue bound; `submit()` drops (and counts) beyond it.
        health: where drops and errors are counted.
        name: thread name, shown by py-spy and `threading.enumerate()`.
    """

    def __init__(
        self,
        handle: Callable[[Sequence[T]], None],
        *,
        maxsize: int,
        health: Health,
        name: str = "otel-bridge-export",
        on_fork: Callable[[], None] | None = None,
    ) -> None:
        self._handle = handle
        self._on_fork = on_fork
        self._maxsize = maxsize
        self._health = health
        self._name = name
        self._init_state()
        reference = weakref.ref(self)

        def after_fork() -> None:
            worker = reference()
            if worker is not None:
                worker._after_fork()

        os.register_at_fork(after_in_child=after_fork)

    def _init_state(self) -> None:
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0
        self._weight = 0  # of the items submitted since the thread last woke (approximate)
        # Batches handled so far, and their number when a wait last found no room.
        self._batches = 0
        self._stuck_at = -1

    def _after_fork(self) -> None:
        # In a forked child the parent's thread does not exist, and the queue holds the
        # parent's records, which the parent exports itself: start afresh.
        self._init_state()
        if self._on_fork is not None:
            self._on_fork()

    def submit(self, item: T, weight: int = 0) -> bool:
        """Queue one item; False if it was dropped (counted). Never raises; waits at most
        `BACKPRESSURE_S`, and only when the queue is full. `weight`: what the item holds
        (child spans), for waking the thread sooner."""
        if self._thread is None:
            self._start()
        queue = self._queue
        if self._stopping:
            self._health.drop("after_shutdown")
            return False
        if len(queue) >= self._maxsize and not self._wait_for_room():
            self._health.drop("queue_full")
            return False
        queue.append(item)
        if weight:
            self._weight += weight
        if (len(queue) >= WAKE_AT or self._weight >= WAKE_WEIGHT) and not self._wake.is_set():
            self._weight = 0
            self._wake.set()
        return True

    def _wait_for_room(self) -> bool:
        now = time.monotonic()
        if (
            self._batches == self._stuck_at
            or self._pid != os.getpid()
            or threading.current_thread() is self._thread
        ):
            return False
        deadline = now + BACKPRESSURE_S
        with self._room:
            self._waiting += 1
            try:
                self._wake.set()
                while len(self._queue) >= self._maxsize:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self._stuck_at = self._batches
                        return False
                    self._room.wait(remaining)
            finally:
                self._waiting -= 1
        return True

    @property
    def depth(self) -> int:
        """Items waiting in the queue."""
        return len(self._queue)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread = thread
            thread.start()

    def _run(self) -> None:
        queue = self._queue
        wake = self._wake
        while True:
            wake.wait(INTERVAL_S)
            wake.clear()
            self._weight = 0  # what waits is handled now, however the thread woke
            with self._idle:
                self._busy = True
            try:
                while queue:
                    batch = [queue.popleft() for _ in range(min(BATCH_SIZE, len(queue)))]
                    if self._waiting:
                        # There is room from now on: a waiting request need not wait for
                        # the batch's export.
                        with self._room:
                            self._room.notify_all()
                    try:
                        self._handle(batch)
                    except Exception as exc:  # noqa: BLE001 - a handler bug must not kill the thread
                        self._health.error("worker", exc)
                    # Let the records go now, not when the next batch replaces this one.
                    del batch
                    self._batches += 1
            finally:
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()
            if self._stopping and not queue:
                return

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything submitted so far has been handled; False on timeout (or when
        called from the thread itself, by a handler: it cannot wait for itself)."""
        if self._thread is None or self._pid != os.getpid():
            return not self._queue
        if threading.current_thread() is self._thread:
            return False
        deadline = time.monotonic() + timeout_s
        while True:
            with self._idle:
                if not self._queue and not self._busy:
                    return True
                self._wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, IDLE_WAIT_S))

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Drain the queue, then stop the thread; later submits are dropped and counted."""
        self._stopping = True
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return True
        self._wake.set()
        thread.join(timeout_s)
        return not thread.is_alive()


def run_bounded(
    calls: Sequence[Callable[[], object]], timeout_s: float
) -> list[BaseException | None]:
    """Run `calls` at once, each on a daemon thread, and wait for them `timeout_s` at most in
    all. Returns, in order, None for a call that returned, what it raised, or a TimeoutError
    for one still running (left behind: a daemon thread never holds the process's exit)."""
    outcomes: list[BaseException | None] = [TimeoutError("still running")] * len(calls)
    finished = [threading.Event() for _ in calls]

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            call()
            outcomes[index] = None
        except Exception as exc:  # noqa: BLE001 - reported to the caller
            outcomes[index] = exc
        finally:
            finished[index].set()

    for index, call in enumerate(calls):
        threading.Thread(
            target=run, args=(index, call), name="otel-bridge-shutdown", daemon=True
        ).start()
    deadline = time.monotonic() + max(0.0, timeout_s)
    for event in finished:
        event.wait(max(0.0, deadline - time.monotonic()))
    return [
        outcome if event.is_set() else TimeoutError("still running")
        for outcome, event in zip(outcomes, finished, strict=True)
    ]
