"""Memory stays flat under sustained load (benchmarks/memory.py drives it, in a process of
its own so nothing else in it allocates): the resident set after 60,000 requests with every
view on stays within 5 MB of the one after the first 10,000 (both read under load, queues as
full as the load keeps them), and the numbers of live objects and threads do not grow;
nothing is dropped on the way."""

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
    total = 60_000
    result: dict[str, Any] = run(total)
    growth = result["rss_after_all_mb"] - result["rss_after_warmup_mb"]
    assert growth < 5, f"RSS grew {growth:.1f} MB over {total - WARMUP:,} requests"
    objects0, objects1 = result["objects"]
    assert objects1 - objects0 < 500, result["objects"]
    assert result["threads"][0] == result["threads"][1]
    assert result["spans_exported"] >= total, "every request's span reached the exporter"
    # Nothing is dropped unless the export thread could not pop a batch for 50 ms (a long
    # collection on a loaded machine): then a few records, never a second's worth.
    dropped = sum(result["dropped"].values())
    assert dropped <= total // 1000, result["dropped"]
    assert result["packets_sent"] == total - dropped
    assert result["packets_received"] == total - dropped, "loopback, a 4 MB buffer: none lost"
