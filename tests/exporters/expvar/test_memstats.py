"""memstats' cumulative counters behave as Go documents them: they never decrease over the life
of the process (Datadog's go_expvar check and expvarmon compute rates from them)."""

from __future__ import annotations

import gc
import json

from otel_bridge.exporters.expvar._memstats import GCMonitor, memstats

# Go's runtime.MemStats documents these as cumulative.
CUMULATIVE = ("TotalAlloc", "Mallocs", "Frees", "NumGC", "PauseTotalNs")


def test_cumulative_counters_never_decrease_while_the_heap_grows_and_shrinks() -> None:
    monitor = GCMonitor()
    monitor.install()
    try:
        reads = []
        kept: list[object] = []
        for step in range(40):
            if step % 3 == 0:
                kept.append([{"n": n} for n in range(5_000)])  # the heap grows
            elif step % 3 == 1 and kept:
                kept.pop()  # freed by reference counting alone: HeapObjects falls
            else:
                cycle: list[object] = []
                cycle.append(cycle)
                del cycle
                gc.collect()  # freed by the cyclic collector
            reads.append(json.loads(memstats(monitor)))
    finally:
        monitor.uninstall()
    for field in CUMULATIVE:
        values = [read[field] for read in reads]
        assert values == sorted(values), (field, values)
    assert reads[-1]["NumGC"] > reads[0]["NumGC"]
    assert reads[-1]["Frees"] > reads[0]["Frees"]
    heap_objects = [read["HeapObjects"] for read in reads]
    assert heap_objects != sorted(heap_objects), "the test made HeapObjects fall"
    # Go's identity holds at every read.
    assert all(r["Mallocs"] - r["Frees"] == r["HeapObjects"] for r in reads)
    assert all(r["TotalAlloc"] >= r["Alloc"] for r in reads)
