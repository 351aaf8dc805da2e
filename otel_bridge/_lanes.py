"""One lane per view: its own thread and bounded queue, so that a view that blocks (a wide-event
sink on a pipe nobody reads, a Pinba collector whose name takes seconds to resolve) holds up
only itself.

The export thread builds each batch of records once and hands the same immutable batch to
every lane (one append per lane per batch, not per record). A lane that is full drops the
batch for its own view only: counted under ``view.<name>`` in the bridge's health, logged
once when the view falls behind and once when it catches up again. The other views and the
request path never wait for it, except for one short wait (`BACKPRESSURE_S`) the first time
it is full since it last made progress: a process whose request threads keep the CPU busy
would otherwise starve a healthy lane of the GIL and lose records exactly under load.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from otel_bridge._health import Health

__all__ = ["Lane"]

logger = logging.getLogger("otel_bridge")

T = TypeVar("T")

BACKPRESSURE_S = 0.05
# How often flush() re-checks while it waits.
IDLE_WAIT_S = 0.05
# A lane's thread wakes when this many items wait, or every INTERVAL_S: waking it for every
# batch would cost a thread switch (and a GIL hand-off) per batch, per view.
WAKE_AT = 256
INTERVAL_S = 0.1


class Lane(Generic[T]):
    """A bounded queue of batches and the thread that hands them to `handle`.

    Args:
        name: the view's name, in counters, logs and the thread's name.
        handle: called on the lane's thread with each batch. Exceptions are counted as
            ``exporter.<name>``; the lane goes on.
        health: where drops and errors are counted.
        max_items: the most items (summed over batches) waiting; past it, batches drop.
    """

    def __init__(
        self,
        name: str,
        handle: Callable[[Sequence[T]], None],
        *,
        health: Health,
        max_items: int,
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_settled = on_settled
        self._handle = handle
        self._health = health
        self._max = max(1, max_items)
        self._kind = f"view.{name}"
        self._init_state()

    def _init_state(self) -> None:
        self._batches: deque[Sequence[T]] = deque()
        self._waiting = 0  # items queued, summed over batches
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._done = 0  # batches handled so far
        self._stuck_at = -1  # _done when a wait for room last found none
        self._dropped_since: int | None = None  # items dropped since the view fell behind
        self._behind_since = 0.0
        # Items handled or dropped so far: every item before them is settled, one way or
        # the other (what a worker killed now would not lose).
        self.settled = 0

    @property
    def depth(self) -> int:
        """Items waiting."""
        return self._waiting

    @property
    def behind(self) -> bool:
        """True while the view drops what it cannot keep up with."""
        return self._dropped_since is not None

    def submit(self, batch: Sequence[T]) -> bool:
        """Queue `batch` (the caller keeps no right to change it); False if it was dropped
        (counted). Waits at most `BACKPRESSURE_S`, and only when the lane is full."""
        if self._pid != os.getpid():
            self._init_state()  # a forked child: the parent's thread is not here
        if self._thread is None:
            self._start()
        size = len(batch)
        with self._lock:
            if self._stopping:
                self._health.drop(self._kind, size)
                self.settled += size
                return False
            if self._waiting + size > self._max and not self._wait_for_room(size):
                self._fell_behind(size)
                return False
            self._batches.append(batch)
            self._waiting += size
            waiting = self._waiting
        if waiting >= WAKE_AT and not self._wake.is_set():
            self._wake.set()
        return True

    def _wait_for_room(self, size: int) -> bool:
        # With the lock held. One wait per stretch without progress: a view stuck inside one
        # export costs the export thread one wait, not one per batch.
        if self._done == self._stuck_at:
            return False
        deadline = time.monotonic() + BACKPRESSURE_S
        self._wake.set()
        while self._waiting + size > self._max:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stuck_at = self._done
                return False
            self._changed.wait(remaining)
        return True

    def _fell_behind(self, size: int) -> None:
        self._health.drop(self._kind, size)
        self.settled += size
        if self._dropped_since is None:
            self._dropped_since = 0
            self._behind_since = time.monotonic()
            busy = " (its export has not returned)" if self._busy else ""
            logger.warning(
                "otel_bridge: view %s is not keeping up%s; its records are dropped and counted "
                "(bridge dropped %s) until it does; requests and the other views are unaffected",
                self.name,
                busy,
                self._kind,
            )
        self._dropped_since += size

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name=f"otel-bridge-{self.name}", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        batches = self._batches
        while True:
            self._wake.wait(INTERVAL_S)
            self._wake.clear()
            while True:
                with self._lock:
                    if not batches:
                        self._busy = False
                        self._changed.notify_all()
                        if self._stopping:
                            return
                        break
                    batch = batches.popleft()
                    self._busy = True
                try:
                    self._handle(batch)
                except Exception as exc:  # noqa: BLE001 - a view's bug must not stop its lane
                    self._health.error(f"exporter.{self.name}", exc)
                with self._lock:
                    self._waiting -= len(batch)
                    self.settled += len(batch)
                    self._done += 1
                    self._changed.notify_all()
                    if self._dropped_since is not None and self._waiting * 2 <= self._max:
                        self._caught_up()
                del batch
                if self._on_settled is not None:
                    self._on_settled()

    def _caught_up(self) -> None:
        dropped = self._dropped_since
        self._dropped_since = None
        logger.warning(
            "otel_bridge: view %s is keeping up again after %.1f s; %d records were dropped",
            self.name,
            time.monotonic() - self._behind_since,
            dropped,
        )

    def flush(self, timeout_s: float) -> bool:
        """Wait until every batch queued so far has been handled; False on timeout."""
        if self._thread is None or self._pid != os.getpid():
            return True
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._wake.set()
            while self._batches or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, IDLE_WAIT_S))
        return True

    def stop(self, timeout_s: float) -> bool:
        """Hand over what is queued, then end the thread; False if the view did not finish
        in time (what it still held is counted as dropped). Later batches are dropped."""
        with self._lock:
            self._stopping = True
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return True
        self._wake.set()
        thread.join(max(0.0, timeout_s))
        if not thread.is_alive():
            return True
        with self._lock:
            left = self._waiting
        logger.warning(
            "otel_bridge: view %s did not finish within the shutdown bound; %d records it "
            "still held are dropped",
            self.name,
            left,
        )
        self._health.drop(self._kind, left)
        return False
