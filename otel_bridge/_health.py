"""The failsafe boundary: count every failure by kind, log the first one and a periodic summary.

Every call from the request path or a background thread into code that may fail goes through
`Health.error()`. Nothing here raises. The counters are shown in the `bridge` section of
`/debug/vars`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Health"]

logger = logging.getLogger("otel_bridge")

# One log line per kind per interval at most: a broken exporter under load must not flood the
# application's logs.
SUMMARY_INTERVAL_S = 60.0


class Health:
    """Counters of failures and drops, keyed by kind (e.g. ``"exporter.pinba"``).

    Args:
        clock: monotonic clock in seconds, injectable for tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.errors: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self._logged_at: dict[str, float] = {}
        self._logged_count: dict[str, int] = {}

    def error(self, kind: str, exc: BaseException) -> None:
        """Count a failure of `kind` and log it if this kind has not been logged recently.

        Never raises.
        """
        try:
            with self._lock:
                count = self.errors.get(kind, 0) + 1
                self.errors[kind] = count
                now = self._clock()
                last = self._logged_at.get(kind)
                if last is not None and now - last < SUMMARY_INTERVAL_S:
                    return
                since = count - self._logged_count.get(kind, 0)
                self._logged_at[kind] = now
                self._logged_count[kind] = count
            if last is None:
                logger.warning(
                    "otel_bridge: %s failed (%s: %s); the app is unaffected, further failures "
                    "are counted (bridge health: errors) and summarised every %ds",
                    kind,
                    type(exc).__name__,
                    exc,
                    int(SUMMARY_INTERVAL_S),
                    exc_info=exc,
                )
            else:
                logger.warning(
                    "otel_bridge: %s failed %d times in the last %ds (latest: %s: %s)",
                    kind,
                    since,
                    int(now - last),
                    type(exc).__name__,
                    exc,
                )
        except Exception:  # noqa: BLE001 - the failsafe itself must never raise
            pass

    def drop(self, kind: str, count: int = 1) -> None:
        """Count `count` items dropped for `kind` (a full queue, an oversized packet…)."""
        with self._lock:
            self.dropped[kind] = self.dropped.get(kind, 0) + count

    def count(self, kind: str, count: int = 1) -> None:
        """Count `count` events of `kind` that are neither failures nor drops (packets sent…)."""
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + count

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Copy of the counters, for `/debug/vars`."""
        with self._lock:
            return {
                "errors": dict(self.errors),
                "dropped": dict(self.dropped),
                "counts": dict(self.counts),
            }
