"""A shared-memory scoreboard of a multi-process server's workers (gunicorn).

The master creates one segment before it forks (`otel_bridge.gunicorn.on_starting`) and
removes it when it exits; each worker gets a fixed slot (`pre_fork`), writes only its own slot
(from the exporter thread, once per batch) and reads everyone's without opening anything per
request: the mapping is inherited through fork(). When a worker exits, the master folds its
counters into the header's `retired` totals, so server totals never go backwards.

After the slots come the route tables (`otel_bridge._routeboard`): one per slot, which only
its worker writes, and a retired one. Folding a table or a slot into the retired figures
happens inside a write window (a sequence number that is odd while it lasts); a reader
retries around it, so the server's figures never count a worker twice or not at all.

The segment is created by Python's SharedMemory: mode 0600, owned by the server's user. It is
sparse: a table's pages are used as its worker sees routes (368 bytes a route).
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import shared_memory
from typing import Any, TypeVar

from otel_bridge._routeboard import TABLE_SIZE, Figures, clear_table, fold_table, merge_tables

__all__ = [
    "COUNTERS",
    "Scoreboard",
    "current",
    "set_current",
]

MAGIC = b"OTBRIDGE"
VERSION = 5
# Per slot: the worker's pid and start time (ns since the epoch), then its counters.
COUNTERS = (
    "requests",
    "errors",
    "status_1xx",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "duration_ns",
)
_HEADER = struct.Struct("<8sII")  # magic, version, slots
_RETIRED = struct.Struct("<" + "q" * len(COUNTERS))
# After the retired totals: the listen backlog, when the master's monitor last sampled, and
# the records lost with workers that exited (answered, never handed to every view).
_SERVER = struct.Struct("<qqq")
_SERVER_OFFSET = _HEADER.size + _RETIRED.size
# Then the write window's sequence number: odd while the retired figures are being updated.
_SEQUENCE_OFFSET = _SERVER_OFFSET + _SERVER.size
_T = TypeVar("_T")
_SLOT = struct.Struct("<qq" + "q" * len(COUNTERS))
# After the counters: how many requests the worker is serving (0 when idle), its RSS (written
# by the master's monitor), then room no longer used (the requests are in the entries below).
_BUSY = struct.Struct("<qqq64s48s")
_BUSY_OFFSET = _SLOT.size
# After those: requests the worker answered (written on the request path) and records it
# handed to every view (written by its export threads). The master reads the difference
# when the worker dies: records that were still on their way.
_FLOW = struct.Struct("<qq")
_FLOW_OFFSET = _BUSY_OFFSET + _BUSY.size
# Then, from IN_FLIGHT_OFFSET, one entry per request in progress (async and threaded workers
# serve several at once): its start (ns since the epoch, 0 when free), whether a timeout event
# was written for it, its path and request id. A request that finds every entry taken is
# only counted, in the busy word.
_ENTRY = struct.Struct("<qq64s48s")
IN_FLIGHT = 6
IN_FLIGHT_OFFSET = 256
SLOT_SIZE = IN_FLIGHT_OFFSET + IN_FLIGHT * _ENTRY.size  # 1,024 bytes
HEADER_SIZE = 128


class Scoreboard:
    """The segment: a header, retired totals, and `slots` fixed-size worker slots."""

    def __init__(self, memory: shared_memory.SharedMemory, slots: int, owner: bool) -> None:
        self.memory = memory
        self.slots = slots
        self.owner = owner
        self._buffer: Any = memory.buf
        self._free = list(range(slots))  # the master's view of which slots are free
        # This worker's own: its free in-flight entries and how many requests it serves.
        self._entries_lock = threading.Lock()
        self._free_entries = list(range(IN_FLIGHT - 1, -1, -1))
        self._in_flight = 0

    @staticmethod
    def version_of(buffer: Any) -> int | None:
        """The layout version of a segment (None: not initialised yet)."""
        magic, version, _ = _HEADER.unpack_from(buffer, 0)
        return int(version) if magic == MAGIC else None

    def write_header(self) -> None:
        _HEADER.pack_into(self._buffer, 0, MAGIC, VERSION, self.slots)

    @staticmethod
    def slots_for(size: int) -> int:
        """How many slots a segment of `size` bytes holds."""
        return (size - HEADER_SIZE - TABLE_SIZE) // (SLOT_SIZE + TABLE_SIZE)

    @staticmethod
    def size_for(slots: int) -> int:
        return HEADER_SIZE + slots * SLOT_SIZE + (slots + 1) * TABLE_SIZE

    @classmethod
    def create(cls, slots: int) -> Scoreboard:
        size = cls.size_for(slots)
        memory = shared_memory.SharedMemory(create=True, size=size)
        board = cls(memory, slots, owner=True)
        board.write_header()
        _RETIRED.pack_into(board._buffer, _HEADER.size, *([0] * len(COUNTERS)))
        _SERVER.pack_into(board._buffer, _SERVER_OFFSET, 0, 0, 0)
        for slot in range(slots):
            board.clear(slot)
        return board

    @property
    def buffer(self) -> Any:
        return self._buffer

    @property
    def name(self) -> str:
        return self.memory.name

    # -- master --------------------------------------------------------------------------

    def assign(self) -> int | None:
        """A free slot for a worker about to be forked (None when all are taken)."""
        return self._free.pop(0) if self._free else None

    def release(self, slot: int) -> int:
        """A worker exited: keep its counters and route figures in the retired ones, free its
        slot. Returns the records it answered but never handed to every view (also added to
        the server's `records_lost`)."""
        answered, exported = _FLOW.unpack_from(self._buffer, self._offset(slot) + _FLOW_OFFSET)
        lost: int = max(0, answered - exported)
        with self._writing():
            if lost:
                offset = _SERVER_OFFSET + 16
                struct.pack_into("<q", self._buffer, offset, self._server_field(2) + lost)
            retired = list(_RETIRED.unpack_from(self._buffer, _HEADER.size))
            counters = _SLOT.unpack_from(self._buffer, self._offset(slot))[2:]
            _RETIRED.pack_into(
                self._buffer,
                _HEADER.size,
                *(a + b for a, b in zip(retired, counters, strict=True)),
            )
            fold_table(self._buffer, self.table(slot), self.table(self.slots))
            self.clear(slot)
        if slot not in self._free:
            self._free.append(slot)
            self._free.sort()
        return lost

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The write window (one writer at a time: the master, or the file lock's holder)."""
        sequence = struct.unpack_from("<q", self._buffer, _SEQUENCE_OFFSET)[0]
        struct.pack_into("<q", self._buffer, _SEQUENCE_OFFSET, sequence | 1)
        try:
            yield
        finally:
            struct.pack_into("<q", self._buffer, _SEQUENCE_OFFSET, (sequence | 1) + 1)

    def _consistent(self, read: Callable[[], _T]) -> _T:
        """`read()` outside any write window (retried around one; a reader never waits on
        more than a fold of one worker's figures)."""
        for _ in range(200):
            before = struct.unpack_from("<q", self._buffer, _SEQUENCE_OFFSET)[0]
            if not before & 1:
                value = read()
                if struct.unpack_from("<q", self._buffer, _SEQUENCE_OFFSET)[0] == before:
                    return value
            time.sleep(0.0005)
        return read()

    def table(self, slot: int) -> int:
        """The offset of `slot`'s route table (`slots`: the retired one)."""
        return HEADER_SIZE + self.slots * SLOT_SIZE + slot * TABLE_SIZE

    def requests(self) -> tuple[Figures, dict[str, Figures]]:
        """The server's request figures, total and per route: the retired table's and every
        slot's (a worker killed but not yet reaped still counts)."""
        tables = [self.table(self.slots), *(self.table(slot) for slot in range(self.slots))]
        return self._consistent(lambda: merge_tables(self._buffer, tables))

    def _server_field(self, index: int) -> int:
        value: int = _SERVER.unpack_from(self._buffer, _SERVER_OFFSET)[index]
        return value

    def close(self) -> None:
        """Unmap; the owner also removes the segment from /dev/shm."""
        self._buffer = None
        try:
            self.memory.close()
        except BufferError:
            pass
        if self.owner:
            try:
                self.memory.unlink()
            except FileNotFoundError:
                pass

    # -- workers -------------------------------------------------------------------------

    def _offset(self, slot: int) -> int:
        return HEADER_SIZE + slot * SLOT_SIZE

    def clear(self, slot: int) -> None:
        _SLOT.pack_into(self._buffer, self._offset(slot), 0, 0, *([0] * len(COUNTERS)))
        _BUSY.pack_into(self._buffer, self._offset(slot) + _BUSY_OFFSET, 0, 0, 0, b"", b"")
        _FLOW.pack_into(self._buffer, self._offset(slot) + _FLOW_OFFSET, 0, 0)
        for entry in range(IN_FLIGHT):
            _ENTRY.pack_into(self._buffer, self._entry(slot, entry), 0, 0, b"", b"")
        clear_table(self._buffer, self.table(slot))

    def reset(self) -> None:
        """Zero every figure (a segment left behind by workers that are all gone), touching
        only the pages in use."""
        with self._writing():
            _RETIRED.pack_into(self._buffer, _HEADER.size, *([0] * len(COUNTERS)))
            _SERVER.pack_into(self._buffer, _SERVER_OFFSET, 0, 0, 0)
            for slot in range(self.slots):
                self.clear(slot)
            clear_table(self._buffer, self.table(self.slots))

    def write(self, slot: int, pid: int, started_ns: int, counters: Sequence[int]) -> None:
        _SLOT.pack_into(self._buffer, self._offset(slot), pid, started_ns, *counters)

    def _entry(self, slot: int, entry: int) -> int:
        return self._offset(slot) + IN_FLIGHT_OFFSET + entry * _ENTRY.size

    def begin_request(self, slot: int, start_ns: int, path: str, request_id: str) -> int:
        """The worker took a request (what `child_exit` reports if the worker dies in it).
        Returns its entry, for `end_request()`; -1 when all are taken (then only counted)."""
        with self._entries_lock:
            free = self._free_entries
            entry = free.pop() if free else -1
            self._in_flight += 1
            # The busy word, how many requests this worker is serving: written under the
            # lock, so that two threads cannot leave it at a stale count.
            struct.pack_into("<q", self._buffer, self._offset(slot) + _BUSY_OFFSET, self._in_flight)
        if entry >= 0:
            _ENTRY.pack_into(
                self._buffer,
                self._entry(slot, entry),
                start_ns,
                0,
                path.encode("utf-8", "replace")[:64],
                request_id.encode("utf-8", "replace")[:48],
            )
        return entry

    def end_request(self, slot: int, entry: int = -1) -> None:
        if entry >= 0:
            struct.pack_into("<q", self._buffer, self._entry(slot, entry), 0)
        with self._entries_lock:
            if entry >= 0:
                self._free_entries.append(entry)
            self._in_flight = max(0, self._in_flight - 1)
            struct.pack_into("<q", self._buffer, self._offset(slot) + _BUSY_OFFSET, self._in_flight)

    def set_answered(self, slot: int, answered: int) -> None:
        """Requests (and jobs) this worker finished so far."""
        struct.pack_into("<q", self._buffer, self._offset(slot) + _FLOW_OFFSET, answered)

    def set_exported(self, slot: int, exported: int) -> None:
        """Records this worker handed to every view so far."""
        struct.pack_into("<q", self._buffer, self._offset(slot) + _FLOW_OFFSET + 8, exported)

    def mark_timeout_written(self, slot: int, entry: int) -> None:
        if entry >= 0:
            struct.pack_into("<q", self._buffer, self._entry(slot, entry) + 8, 1)

    def set_rss(self, slot: int, rss: int) -> None:
        struct.pack_into("<q", self._buffer, self._offset(slot) + _BUSY_OFFSET + 8, rss)

    def set_server(self, backlog: int, sampled_ns: int) -> None:
        struct.pack_into("<qq", self._buffer, _SERVER_OFFSET, backlog, sampled_ns)

    def pids(self) -> dict[int, int]:
        """slot → pid of the live workers."""
        found = {}
        for slot in range(self.slots):
            pid = struct.unpack_from("<q", self._buffer, self._offset(slot))[0]
            if pid:
                found[slot] = pid
        return found

    def in_progress(self, slot: int) -> list[dict[str, Any]]:
        """The requests `slot`'s worker was serving and no timeout event reported, oldest
        first; plus, as {"unlisted": n}, those beyond the entries (counted, not described)."""
        found = []
        for entry in range(IN_FLIGHT):
            start, written, path, request_id = _ENTRY.unpack_from(
                self._buffer, self._entry(slot, entry)
            )
            if start and not written:
                found.append(
                    {
                        "start_ns": start,
                        "path": path.rstrip(b"\0").decode("utf-8", "replace"),
                        "request_id": request_id.rstrip(b"\0").decode("utf-8", "replace"),
                    }
                )
        busy = struct.unpack_from("<q", self._buffer, self._offset(slot) + _BUSY_OFFSET)[0]
        listed = sum(
            1
            for entry in range(IN_FLIGHT)
            if struct.unpack_from("<q", self._buffer, self._entry(slot, entry))[0]
        )
        found.sort(key=lambda request: request["start_ns"])
        if busy > listed:
            found.append({"unlisted": busy - listed})
        return found

    def read(self) -> dict[str, Any]:
        """Every live worker's counters and state, the retired ones, and the server totals."""
        return self._consistent(self._read)

    def _read(self) -> dict[str, Any]:
        workers = []
        totals = list(_RETIRED.unpack_from(self._buffer, _HEADER.size))
        retired = dict(zip(COUNTERS, totals, strict=True))
        for slot in range(self.slots):
            offset = self._offset(slot)
            pid, started, *counters = _SLOT.unpack_from(self._buffer, offset)
            if pid == 0:
                continue
            busy, rss, _, _, _ = _BUSY.unpack_from(self._buffer, offset + _BUSY_OFFSET)
            worker: dict[str, Any] = {
                "slot": slot,
                "pid": pid,
                "started_ns": started,
                "busy": busy > 0,
                "in_flight": busy,
                **dict(zip(COUNTERS, counters, strict=True)),
            }
            if rss:  # measured by the master's monitor (when_ready); unknown is absent, not 0
                worker["rss_bytes"] = rss
            workers.append(worker)
            totals = [a + b for a, b in zip(totals, counters, strict=True)]
        backlog, sampled, lost = _SERVER.unpack_from(self._buffer, _SERVER_OFFSET)
        state: dict[str, Any] = {
            "workers": workers,
            "retired": retired,
            "total": dict(zip(COUNTERS, totals, strict=True)),
            # Answered by workers that exited before handing them to every view.
            "records_lost": lost,
        }
        if sampled:
            # Only once the master's monitor has sampled them (the when_ready hook): a
            # figure that is not known is absent, never 0.
            state["listen_backlog"] = backlog
            state["monitor_sampled_ns"] = sampled
        return state


_current: tuple[Scoreboard, int] | None = None


def set_current(board: Scoreboard | None, slot: int | None) -> None:
    """This process writes to `slot` of `board` (set in the worker after fork)."""
    global _current
    _current = (board, slot) if board is not None and slot is not None else None


def current() -> tuple[Scoreboard, int] | None:
    return _current


_master: int | None = None


def set_master(pid: int | None) -> None:
    """The pid of the master running otel_bridge's hooks (set in it before it forks, so its
    workers inherit it, a preloaded app's code included)."""
    global _master
    _master = pid


def master() -> int | None:
    """The master's pid when its hooks run (gunicorn with otel_bridge.gunicorn), else None."""
    return _master
