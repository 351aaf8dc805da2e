"""Per-route figures in the scoreboard segment: each worker's table, merged; folded on exit."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_bridge._routeboard import (
    MAX_ROUTES,
    NAME_SIZE,
    OTHER,
    TABLE_SIZE,
    Figures,
    RouteMirror,
    bucket_of,
    table_name,
)
from otel_bridge._scoreboard import Scoreboard


def count(mirror: RouteMirror, name: str, milliseconds: float, status: int = 200) -> None:
    with mirror.lock:
        figures = mirror.figures_for(name)
        error = status >= 500
        for target in (figures, mirror.total):
            target.add(milliseconds, status // 100, error, bucket_of(milliseconds))


@pytest.fixture
def board() -> Iterator[Scoreboard]:
    created = Scoreboard.create(3)
    yield created
    created.close()


def test_the_server_figures_merge_every_workers_table_by_route(board: Scoreboard) -> None:
    first, second = RouteMirror(), RouteMirror()
    for milliseconds in (2.0, 4.0, 30.0):
        count(first, "/users/{id}", milliseconds)
    count(first, "/fail", 12.0, status=500)
    count(second, "/users/{id}", 1.0)
    count(second, "/orders", 700.0, status=404)
    with first.lock:
        first.publish(board.buffer, board.table(0))
    with second.lock:
        second.publish(board.buffer, board.table(2))
    total, routes = board.requests()
    assert sorted(routes) == ["/fail", "/orders", "/users/{id}"]
    users = routes["/users/{id}"]
    assert (users.count, users.min, users.max, users.sum) == (4, 1.0, 30.0, 37.0)
    assert users.classes[2] == 4
    assert users.buckets[0] == 3 and users.buckets[3] == 1  # ≤5 ms three times, ≤50 once
    assert (total.count, total.errors, total.classes[4], total.classes[5]) == (6, 1, 1, 1)
    assert (total.min, total.max) == (1.0, 700.0)


def test_a_mirror_writes_only_what_changed_and_the_table_follows_it(board: Scoreboard) -> None:
    mirror = RouteMirror()
    count(mirror, "/a", 1.0)
    with mirror.lock:
        mirror.publish(board.buffer, board.table(1))
    count(mirror, "/a", 3.0)
    count(mirror, "/b", 5.0)
    with mirror.lock:
        mirror.publish(board.buffer, board.table(1))
    total, routes = board.requests()
    assert {name: figures.count for name, figures in routes.items()} == {"/a": 2, "/b": 1}
    assert total.count == 3 and total.sum == 9.0


def test_a_workers_figures_survive_its_exit_and_a_reused_slot_starts_empty(
    board: Scoreboard,
) -> None:
    gone, replacement = RouteMirror(), RouteMirror()
    count(gone, "/a", 1.0)
    count(gone, "/b", 2.0)
    with gone.lock:
        gone.publish(board.buffer, board.table(0))
    board.write(0, 111, 1, [0] * 8)
    board.release(0)
    _, routes = board.requests()
    assert {name: figures.count for name, figures in routes.items()} == {"/a": 1, "/b": 1}
    # The slot's next worker: its table starts empty, the server's figures keep the old ones.
    count(replacement, "/a", 3.0)
    with replacement.lock:
        replacement.publish(board.buffer, board.table(0))
    total, routes = board.requests()
    assert {name: figures.count for name, figures in routes.items()} == {"/a": 2, "/b": 1}
    assert total.count == 3
    # Its own departure adds to the retired figures, never replaces them.
    board.release(0)
    total, routes = board.requests()
    assert (total.count, routes["/a"].count, routes["/a"].max) == (3, 2, 3.0)


def test_routes_are_bounded_in_a_table_and_in_the_merge(board: Scoreboard) -> None:
    first, second = RouteMirror(), RouteMirror()
    for index in range(MAX_ROUTES + 50):
        count(first, f"/first/{index}", 1.0)
        count(second, f"/second/{index}", 1.0)
    with first.lock:
        first.publish(board.buffer, board.table(0))
    with second.lock:
        second.publish(board.buffer, board.table(1))
    assert len(first.routes) == MAX_ROUTES + 1 and first.routes[OTHER].count == 50
    total, routes = board.requests()
    assert len(routes) == MAX_ROUTES + 1, "the merge is bounded as one table is"
    assert sum(figures.count for figures in routes.values()) == total.count == 2 * (MAX_ROUTES + 50)
    # Retiring them keeps the same bound in the retired table.
    board.release(0)
    board.release(1)
    total, routes = board.requests()
    assert len(routes) == MAX_ROUTES + 1
    assert sum(figures.count for figures in routes.values()) == total.count


def test_long_names_keep_their_difference() -> None:
    long = "/x" * 200
    first, second = table_name(long + "a"), table_name(long + "b")
    assert first != second
    assert len(first.encode()) <= NAME_SIZE and len(second.encode()) <= NAME_SIZE
    assert table_name("/users/{id}") == "/users/{id}"
    assert len(table_name("/é" * 200).encode()) <= NAME_SIZE, "never cut inside a character"


def test_a_reader_never_sees_a_fold_half_done(board: Scoreboard) -> None:
    # The master folds a slot into the retired figures while other workers read: a reader
    # must see the figures before or after it, never counted twice or not at all.
    reads = [0]
    changes: list[int] = []  # each new count the reader saw, in the order it saw them
    stop = threading.Event()

    def read() -> None:
        last = 0
        while not stop.is_set():
            value = board.requests()[0].count
            reads[0] += 1
            if value != last:
                changes.append(value)
                last = value

    reader = threading.Thread(target=read)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # let the reader run in the middle of a fold
    reader.start()
    rounds = 0
    try:
        # A loaded machine can starve either thread for seconds: the bound is generous, and
        # the loop ends once the reader has seen many folds, each between two of its reads.
        deadline = time.monotonic() + 60
        while (len(changes) < 300 or reads[0] < 3000) and time.monotonic() < deadline:
            mirror = RouteMirror()
            count(mirror, "/a", 1.0)
            with mirror.lock:
                mirror.publish(board.buffer, board.table(0))
            board.write(0, 111, 1, [0] * 8)
            board.release(0)
            rounds += 1
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert len(changes) >= 100 and reads[0] >= 1000, "the reader read between many folds"
    assert changes == sorted(changes), "the server's count never went down"
    assert board.requests()[0].count == rounds


def test_the_segment_uses_memory_only_for_what_is_written() -> None:
    board = Scoreboard.create(64)
    try:
        stat = (Path("/dev/shm") / board.name).stat()
        assert stat.st_size == Scoreboard.size_for(64) > 64 * TABLE_SIZE
        assert stat.st_blocks * 512 < 2 << 20, "65 tables of 360 KB, sparse until used"
    finally:
        board.close()


def test_figures_round_trip_through_the_table_exactly() -> None:
    figures = Figures()
    for milliseconds, status in ((0.25, 200), (12_000.5, 503), (7.0, 101)):
        figures.add(milliseconds, status // 100, status >= 500, bucket_of(milliseconds))
    buffer = bytearray(1024)
    figures.pack_into(buffer, 8)
    back = Figures.unpack_from(buffer, 8)
    assert [getattr(back, name) for name in Figures.__slots__] == [
        getattr(figures, name) for name in Figures.__slots__
    ]
    assert back.buckets[-1] == 1, "past the last bound: the overflow bucket"


def test_a_new_worker_process_gets_a_mirror_of_its_own() -> None:
    from otel_bridge import _routeboard

    parent = _routeboard.mirror()
    assert _routeboard.mirror() is parent, "one per process"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, b"new" if _routeboard.mirror() is not parent else b"same")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 8) == b"new"
    os.close(read)
    os.close(write)
