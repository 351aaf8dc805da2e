"""The two clocks every request is measured with, in one place and replaceable in tests.

`monotonic_ns()` (``time.perf_counter_ns``) times durations; `wall_ns()` (``time.time_ns``)
stamps when things happened (the server span's start and end, events). Code reads them as
``clock.monotonic_ns()``, so `use()` swaps them everywhere at once::

    with otel_bridge.clock.use(monotonic=iter([0, 2_000_000, 2_500_000]).__next__):
        ...  # a request whose record says duration_ns == 2_000_000
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["monotonic_ns", "use", "wall_ns"]

monotonic_ns: Callable[[], int] = time.perf_counter_ns
wall_ns: Callable[[], int] = time.time_ns


@contextmanager
def use(
    monotonic: Callable[[], int] | None = None, wall: Callable[[], int] | None = None
) -> Iterator[None]:
    """Read `monotonic` and `wall` instead of the system's clocks inside the block."""
    global monotonic_ns, wall_ns
    saved = monotonic_ns, wall_ns
    monotonic_ns = monotonic or monotonic_ns
    wall_ns = wall or wall_ns
    try:
        yield
    finally:
        monotonic_ns, wall_ns = saved
