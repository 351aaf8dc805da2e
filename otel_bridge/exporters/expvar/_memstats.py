"""Go's `runtime.MemStats`, all 32 fields in Go's order, filled from CPython's runtime.

GC pauses are measured by a `gc.callbacks` hook: CPython's cyclic collector runs with the GIL
held, so a collection is a stop-the-world pause for Python code, as Go's are. The hook writes
`PauseNs`/`PauseEnd` as Go's 256-slot rings indexed by `NumGC`. It takes no lock — a collection
can start inside a reader's own allocations, and a lock held by the reader would deadlock it —
so readers copy under a sequence counter (odd while the hook writes) and retry on a change.

Mapping (research/expvar.md §3): HeapSys = RssAnon, HeapIdle = glibc free bytes (mallinfo2
fordblks, capped), HeapInuse = HeapSys - HeapIdle, Alloc = HeapAlloc = tracemalloc's traced
bytes when tracing, else HeapInuse; HeapObjects = sys.getallocatedblocks(); TotalAlloc, Mallocs
and Frees accumulate what reads see, so that they never decrease (`GCMonitor.cumulative`);
Sys = VmRSS, OtherSys the remainder; fields CPython has no counterpart for are 0.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
import threading
import time
import tracemalloc
from typing import Any

from otel_bridge.exporters.expvar._format import json_float

__all__ = ["GCMonitor", "memstats"]

RING = 256
# Go 1.19's size classes (BySize[].Size); CPython exports no per-class counters.
SIZE_CLASSES = (
    0,
    8,
    16,
    24,
    32,
    48,
    64,
    80,
    96,
    112,
    128,
    144,
    160,
    176,
    192,
    208,
    224,
    240,
    256,
    288,
    320,
    352,
    384,
    416,
    448,
    480,
    512,
    576,
    640,
    704,
    768,
    896,
    1024,
    1152,
    1280,
    1408,
    1536,
    1792,
    2048,
    2304,
    2688,
    3072,
    3200,
    3456,
    4096,
    4864,
    5376,
    6144,
    6528,
    6784,
    6912,
    8192,
    9472,
    9728,
    10240,
    10880,
    12288,
    13568,
    14336,
    16384,
    18432,
)
_BY_SIZE = "[" + ",".join(f'{{"Size":{s},"Mallocs":0,"Frees":0}}' for s in SIZE_CLASSES) + "]"


class GCMonitor:
    """Measures every collection of the cyclic GC once installed (`install()`)."""

    def __init__(self) -> None:
        self.pause_ns = [0] * RING
        self.pause_end = [0] * RING
        self.num_gc = 0
        self.pause_total_ns = 0
        self.last_gc = 0
        self.freed = 0
        self.sequence = 0  # odd while the hook writes
        self.started_ns = time.perf_counter_ns()
        self._start = 0
        self._installed = False
        # Go's cumulative counters (TotalAlloc, Mallocs, Frees) have no CPython counterpart:
        # accumulated from what reads see (`cumulative`), under a lock of the readers' own.
        self._alloc_seen = 0
        self._alloc_total = 0
        self._objects_seen: int | None = None
        self._objects_grown = 0
        self._readers = threading.Lock()
        self._rings: tuple[int, str] | None = None

    def rings(self, num_gc: int, pause_ns: list[int], pause_end: list[int]) -> str:
        """`"PauseNs":[…],"PauseEnd":[…]`, rendered again only after a collection."""
        cached = self._rings
        if cached is not None and cached[0] == num_gc:
            return cached[1]
        text = (
            '"PauseNs":['
            + ",".join(map(str, pause_ns))
            + '],"PauseEnd":['
            + ",".join(map(str, pause_end))
            + "]"
        )
        self._rings = (num_gc, text)
        return text

    def cumulative(self, heap_alloc: int, heap_objects: int, freed: int) -> tuple[int, int, int]:
        """(TotalAlloc, Mallocs, Frees): never decreasing over the life of the process, as Go
        documents them, and Mallocs - Frees = HeapObjects, as in Go.

        TotalAlloc adds up every growth of Alloc seen between reads (never below Alloc).
        Mallocs adds up every growth of HeapObjects seen between reads, plus the objects the
        cyclic GC freed; Frees is then Mallocs - HeapObjects, which grows by every fall of
        HeapObjects and by the GC's frees. Both are lower bounds: objects made and freed
        between two reads by reference counting alone are not seen.
        """
        with self._readers:
            if heap_alloc > self._alloc_seen:
                self._alloc_total += heap_alloc - self._alloc_seen
            self._alloc_seen = heap_alloc
            self._alloc_total = max(self._alloc_total, heap_alloc)
            if self._objects_seen is None:
                self._objects_grown = heap_objects
            elif heap_objects > self._objects_seen:
                self._objects_grown += heap_objects - self._objects_seen
            self._objects_seen = heap_objects
            mallocs = self._objects_grown + freed
            return self._alloc_total, mallocs, mallocs - heap_objects

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self._callback)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            try:
                gc.callbacks.remove(self._callback)
            except ValueError:
                pass
            self._installed = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter_ns()
            return
        pause = time.perf_counter_ns() - self._start
        end = time.time_ns()
        self.sequence += 1
        slot = self.num_gc % RING
        self.pause_ns[slot] = pause
        self.pause_end[slot] = end
        self.pause_total_ns += pause
        self.last_gc = end
        self.freed += info.get("collected", 0)
        self.num_gc += 1
        self.sequence += 1

    def snapshot(self) -> tuple[list[int], list[int], int, int, int, int]:
        """Consistent copies: (PauseNs, PauseEnd, NumGC, PauseTotalNs, LastGC, freed)."""
        for _ in range(100):
            before = self.sequence
            if before % 2:
                continue
            copy = (
                list(self.pause_ns),
                list(self.pause_end),
                self.num_gc,
                self.pause_total_ns,
                self.last_gc,
                self.freed,
            )
            if self.sequence == before:
                return copy
        return copy  # a storm of collections: good enough, never block


_STATUS_KEYS = (b"VmRSS", b"RssAnon", b"VmStk")


def _proc_status() -> dict[str, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/self/status", "rb") as status:
            text = status.read()
    except OSError:
        return values
    for key in _STATUS_KEYS:
        start = text.find(b"\n" + key + b":")
        if start != -1:
            end = text.find(b"\n", start + 1)
            parts = text[start + len(key) + 2 : end].split()
            if parts:
                values[key.decode()] = int(parts[0]) * 1024
    return values


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


_mallinfo2: Any = None
_mallinfo_lock = threading.Lock()


def _malloc_free_bytes() -> int:
    global _mallinfo2
    if _mallinfo2 is None:
        with _mallinfo_lock:
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                function = libc.mallinfo2
                function.restype = _MallInfo2
                _mallinfo2 = function
            except (OSError, AttributeError):
                _mallinfo2 = False
    if not _mallinfo2:
        return 0
    return int(_mallinfo2().fordblks)


def memstats(monitor: GCMonitor) -> str:
    """The `memstats` JSON object, compact, Go's field order and JSON types."""
    pause_ns, pause_end, num_gc, pause_total, last_gc, freed = monitor.snapshot()
    status = _proc_status()
    heap_sys = status.get("RssAnon", 0)
    heap_idle = min(_malloc_free_bytes(), heap_sys)
    heap_inuse = heap_sys - heap_idle
    # Live bytes are known only when the app traces allocations; otherwise the in-use heap.
    traced = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    heap_alloc = heap_inuse if traced is None else traced
    heap_objects = sys.getallocatedblocks()
    stack = status.get("VmStk", 0)
    total = max(status.get("VmRSS", 0), heap_sys + stack)
    other = max(0, total - heap_sys - stack)
    uptime = max(1, time.perf_counter_ns() - monitor.started_ns)
    total_alloc, mallocs, frees = monitor.cumulative(heap_alloc, heap_objects, freed)
    fields = (
        ("Alloc", heap_alloc),
        ("TotalAlloc", total_alloc),
        ("Sys", total),
        ("Lookups", 0),
        ("Mallocs", mallocs),
        ("Frees", frees),
        ("HeapAlloc", heap_alloc),
        ("HeapSys", heap_sys),
        ("HeapIdle", heap_idle),
        ("HeapInuse", heap_inuse),
        ("HeapReleased", 0),
        ("HeapObjects", heap_objects),
        ("StackInuse", stack),
        ("StackSys", stack),
        ("MSpanInuse", 0),
        ("MSpanSys", 0),
        ("MCacheInuse", 0),
        ("MCacheSys", 0),
        ("BuckHashSys", 0),
        ("GCSys", 0),
        ("OtherSys", other),
        ("NextGC", 0),
        ("LastGC", last_gc),
    )
    parts = [f'"{name}":{value}' for name, value in fields]
    parts.append(f'"PauseTotalNs":{pause_total}')
    parts.append(monitor.rings(num_gc, pause_ns, pause_end))
    parts.append(f'"NumGC":{num_gc}')
    parts.append('"NumForcedGC":0')
    parts.append(f'"GCCPUFraction":{json_float(min(1.0, pause_total / uptime))}')
    parts.append(f'"EnableGC":{"true" if gc.isenabled() else "false"}')
    parts.append(f'"DebugGC":{"true" if gc.get_debug() else "false"}')
    parts.append(f'"BySize":{_BY_SIZE}')
    return "{" + ",".join(parts) + "}"
