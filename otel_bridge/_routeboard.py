"""Per-route request figures, and their tables in the scoreboard segment.

`Figures` counts one route's requests: count, errors, status classes, duration sum/min/max
and fixed histogram buckets, so it never grows with traffic. A single process keeps them in
its own memory. Under a multi-process server each worker's `RouteMirror` also writes them to
the worker's own table in the shared segment (`otel_bridge._scoreboard`), from the export
thread, after each batch: one writer per table, no lock, and every figure in it only grows.
Any worker can then merge every table, and the retired one that keeps the figures of workers
that exited, into the server's figures (`merge_tables`).

A table: a 64-byte header (how many entries are in use), then entries of a name (UTF-8,
NUL-padded; a longer name keeps its first bytes and a hash of the rest) and its figures.
Entry 0 is the worker's total. Routes take entries in the order they are first seen, up to
`MAX_ROUTES`; later ones are counted under `<other>`.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from bisect import bisect_left
from typing import Any

__all__ = [
    "BUCKETS_MS",
    "MAX_ROUTES",
    "OTHER",
    "TABLE_SIZE",
    "Figures",
    "RouteMirror",
    "add_route",
    "clear_table",
    "fold_table",
    "merge_tables",
]

MAX_ROUTES = 1000
OTHER = "<other>"
# Milliseconds; the HTTP semantic conventions' duration buckets.
BUCKETS_MS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)

# count, errors, status classes (other, 1xx … 5xx), duration sum/min/max (ms), buckets
_FIGURES = struct.Struct("<8q3d" + "q" * (len(BUCKETS_MS) + 1))
NAME_SIZE = 160
ENTRY_SIZE = NAME_SIZE + _FIGURES.size  # 368 bytes
TABLE_HEADER = 64
CAPACITY = 1 + MAX_ROUTES + 1  # the total, the routes, <other>
TABLE_SIZE = TABLE_HEADER + CAPACITY * ENTRY_SIZE  # 368,800 bytes, touched only as used
_USED = struct.Struct("<q")


class Figures:
    """One route's (or the total's) requests since counting began."""

    __slots__ = ("buckets", "classes", "count", "errors", "max", "min", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = 0.0
        self.classes = [0, 0, 0, 0, 0, 0]  # other, 1xx … 5xx
        self.buckets = [0] * (len(BUCKETS_MS) + 1)

    def add(self, milliseconds: float, status_class: int, error: bool, bucket: int) -> None:
        """Count one request (`status_class` 1-5, else 0; `bucket` from `bucket_of`)."""
        self.count += 1
        self.sum += milliseconds
        if milliseconds < self.min:
            self.min = milliseconds
        if milliseconds > self.max:
            self.max = milliseconds
        self.classes[status_class] += 1
        if error:
            self.errors += 1
        self.buckets[bucket] += 1

    def merge(self, other: Figures) -> None:
        if not other.count:
            return
        self.count += other.count
        self.errors += other.errors
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.classes = [a + b for a, b in zip(self.classes, other.classes, strict=True)]
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]

    def pack_into(self, buffer: Any, offset: int) -> None:
        _FIGURES.pack_into(
            buffer,
            offset,
            self.count,
            self.errors,
            *self.classes,
            self.sum,
            self.min,
            self.max,
            *self.buckets,
        )

    @classmethod
    def unpack_from(cls, buffer: Any, offset: int) -> Figures:
        values = _FIGURES.unpack_from(buffer, offset)
        figures = cls()
        figures.count, figures.errors = values[0], values[1]
        figures.classes = list(values[2:8])
        figures.sum, figures.min, figures.max = values[8], values[9], values[10]
        figures.buckets = list(values[11:])
        return figures


def add_route(routes: dict[str, Figures], name: str) -> tuple[str, Figures]:
    """A route not counted yet in `routes`: its new entry, or past MAX_ROUTES routes
    `<other>`'s. Returns the name counted under, and the entry."""
    if len(routes) >= MAX_ROUTES:
        name = OTHER
    figures = routes.get(name)
    if figures is None:
        figures = routes[name] = Figures()
    return name, figures


def bucket_of(milliseconds: float) -> int:
    """The first bucket whose bound is ≥ the duration; past the last, the overflow."""
    return bisect_left(BUCKETS_MS, milliseconds)


def table_name(name: str) -> str:
    """`name` as a table holds it: at most NAME_SIZE bytes of UTF-8. A longer one keeps its
    first bytes and a hash of the whole, so two long routes never share an entry."""
    encoded = name.encode("utf-8", "replace")
    if len(encoded) <= NAME_SIZE:
        return name
    digest = hashlib.blake2b(encoded, digest_size=6).hexdigest()
    head = encoded[: NAME_SIZE - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}~{digest}"


def _entry(table: int, index: int) -> int:
    return table + TABLE_HEADER + index * ENTRY_SIZE


def used(buffer: Any, table: int) -> int:
    count: int = _USED.unpack_from(buffer, table)[0]
    return max(0, min(count, CAPACITY))


def read_table(buffer: Any, table: int) -> tuple[Figures, dict[str, Figures]]:
    """The total and the routes of the table at offset `table`."""
    total = Figures()
    routes: dict[str, Figures] = {}
    for index in range(used(buffer, table)):
        offset = _entry(table, index)
        name = bytes(buffer[offset : offset + NAME_SIZE]).rstrip(b"\0").decode("utf-8", "replace")
        figures = Figures.unpack_from(buffer, offset + NAME_SIZE)
        if index == 0:
            total = figures
        else:
            routes[name] = figures
    return total, routes


def merge_tables(buffer: Any, tables: list[int]) -> tuple[Figures, dict[str, Figures]]:
    """The server's figures: every table's, merged by route, in table order. Bounded as one
    table is: past MAX_ROUTES distinct routes, the rest count under `<other>`."""
    total = Figures()
    routes: dict[str, Figures] = {}
    for table in tables:
        table_total, table_routes = read_table(buffer, table)
        total.merge(table_total)
        for name, figures in table_routes.items():
            merged = routes.get(name)
            if merged is None:
                if name != OTHER and len(routes) - (OTHER in routes) >= MAX_ROUTES:
                    name = OTHER
                    merged = routes.get(OTHER)
                if merged is None:
                    merged = routes[name] = Figures()
            merged.merge(figures)
    return total, routes


def _write(buffer: Any, table: int, index: int, name: str, figures: Figures) -> None:
    offset = _entry(table, index)
    buffer[offset : offset + NAME_SIZE] = name.encode("utf-8").ljust(NAME_SIZE, b"\0")
    figures.pack_into(buffer, offset + NAME_SIZE)


def clear_table(buffer: Any, table: int) -> None:
    """Empty a table, touching only the entries it used (the segment is sparse)."""
    count = used(buffer, table)
    _USED.pack_into(buffer, table, 0)
    if count:
        start = _entry(table, 0)
        buffer[start : start + count * ENTRY_SIZE] = bytes(count * ENTRY_SIZE)


def fold_table(buffer: Any, source: int, retired: int) -> None:
    """Add the table at `source` into the `retired` one (a worker exited), then empty it.
    The caller is the only writer of both, inside the segment's write window."""
    total, routes = read_table(buffer, source)
    if total.count:
        kept_total, kept = read_table(buffer, retired)
        index = {name: position + 1 for position, name in enumerate(kept)}
        kept_total.merge(total)
        _write(buffer, retired, 0, "", kept_total)
        count = max(1, used(buffer, retired))
        for name, figures in routes.items():
            if name not in index:
                if name != OTHER and len(index) - (OTHER in index) >= MAX_ROUTES:
                    name = OTHER
                if name not in index:
                    index[name] = count
                    count += 1
                    kept[name] = Figures()
            kept[name].merge(figures)
            _write(buffer, retired, index[name], name, kept[name])
        _USED.pack_into(buffer, retired, count)
    clear_table(buffer, source)


class RouteMirror:
    """This worker's figures per route, written to its table after each batch.

    One per process (a bridge that replaces another in the same worker goes on counting
    where it left off, so the table never goes back); reset when a new worker (a new pid)
    first uses it, as its table was emptied when the slot was freed.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.total = Figures()
        self.routes: dict[str, Figures] = {}
        self._index: dict[str, int] = {}
        self._dirty: dict[str, None] = {}  # in the order first seen, as a table fills
        self._pid = os.getpid()
        self._table: tuple[Any, int] | None = None

    def figures_for(self, name: str) -> Figures:
        """The entry to count a request of `name` in (caller holds `lock`)."""
        name = table_name(name)
        figures = self.routes.get(name)
        if figures is None:
            name, figures = add_route(self.routes, name)
        self._dirty[name] = None
        return figures

    def publish(self, buffer: Any, table: int) -> None:
        """Write the routes counted since the last call, then the total (caller holds `lock`)."""
        if self._table is None or self._table[0] is not buffer or self._table[1] != table:
            # The first batch in this slot: the table is empty (freed slots are cleared).
            self._table = (buffer, table)
            self._index = {}
            self._dirty = dict.fromkeys(self.routes)
        index = self._index
        for name in self._dirty:
            position = index.get(name)
            if position is None:
                position = index[name] = len(index) + 1
                _write(buffer, table, position, name, self.routes[name])
                _USED.pack_into(buffer, table, position + 1)
            else:
                self.routes[name].pack_into(buffer, _entry(table, position) + NAME_SIZE)
        self._dirty = {}
        _write(buffer, table, 0, "", self.total)
        if not index:
            _USED.pack_into(buffer, table, 1)


_mirror: RouteMirror | None = None


def mirror() -> RouteMirror:
    """This process's mirror (a new one in a new worker)."""
    global _mirror
    if _mirror is None or _mirror._pid != os.getpid():
        _mirror = RouteMirror()
    return _mirror
