"""Memory stays flat under sustained load (benchmarks/memory.py drives it, in a process of
its own so nothing else in it allocates): over 110,000 requests with every view on, the
resident set grows by less than 5 MB in at least one of the two halves after the first
10,000, read under load (queues as full as the load keeps them) or settled (queues drained, a
full collection); the numbers of live objects and threads do not grow; nothing is dropped on
the way."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.memory import WARMUP
from tests.integration.servers import run_python


def run(total: int) -> dict[str, object]:
    done = run_python("-m", "benchmarks.memory", str(total), timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result


@pytest.mark.integration
def test_rss_objects_and_threads_stay_flat_under_sustained_load() -> None:
    total = 110_000
    result: dict[str, Any] = run(total)
    settled0, settled1 = result["settled_rss_mb"]
    growth = {
        "under load, first half": result["rss_midway_mb"] - result["rss_after_warmup_mb"],
        "under load, second half": result["rss_after_all_mb"] - result["rss_midway_mb"],
        "settled, first half": result["settled_rss_midway_mb"] - settled0,
        "settled, second half": settled1 - result["settled_rss_midway_mb"],
    }
    # A leak grows every reading, in both halves. The views' queues filled once to their
    # highest (a starved export thread on a loaded machine: up to a queue of records, CI saw
    # +15.7 and +17.8 MB) raise RSS for good, the allocator keeping the arenas, in one half.
    assert min(growth.values()) < 5, (
        f"RSS grew in every reading ({(total - WARMUP) // 2:,} requests each): {growth}"
    )
    objects0, objects1 = result["objects"]
    assert objects1 - objects0 < 500, result["objects"]
    assert result["threads"][0] == result["threads"][1]
    assert result["spans_exported"] >= total, "every request's span reached the exporter"
    # Nothing is dropped unless the export thread could not pop a batch for 50 ms (a long
    # collection, or the machine's other work starving the thread: CI's runs of the suite on
    # a loaded machine dropped 626 of 110,000 once): then a few records, counted, never a
    # second's worth of this load.
    dropped = sum(result["dropped"].values())
    assert dropped <= total // 100, result["dropped"]
    assert set(result["dropped"]) <= {"queue_full", "view.pinba", "view.wide_events"}
    # Each view has a lane of its own, which may fall behind alone (CI once saw the wide
    # events' lane drop 64 and Pinba's none): Pinba misses what the bridge's own queue dropped
    # and what its lane dropped, nothing else.
    missed = result["dropped"].get("queue_full", 0) + result["dropped"].get("view.pinba", 0)
    assert result["packets_sent"] == total - missed, result["dropped"]
    assert result["packets_received"] == total - missed, "loopback, a 4 MB buffer: none lost"
