from __future__ import annotations

import os
from pathlib import Path

from otel_bridge._scoreboard import COUNTERS, Scoreboard


def test_slots_are_assigned_written_read_and_retired() -> None:
    board = Scoreboard.create(2)
    try:
        first, second = board.assign(), board.assign()
        assert (first, second) == (0, 1)
        assert board.assign() is None, "all slots taken"
        board.write(0, 111, 5, [3, 1, 0, 2, 0, 0, 1, 900])
        board.write(1, 222, 6, [2, 0, 0, 2, 0, 0, 0, 100])
        state = board.read()
        assert [w["pid"] for w in state["workers"]] == [111, 222]
        assert state["total"]["requests"] == 5 and state["total"]["duration_ns"] == 1000
        board.release(0)
        state = board.read()
        assert [w["pid"] for w in state["workers"]] == [222]
        assert state["retired"] == dict(zip(COUNTERS, [3, 1, 0, 2, 0, 0, 1, 900], strict=True))
        assert state["total"]["requests"] == 5, "totals never go backwards"
        assert board.assign() == 0, "a freed slot is reused"
        path = Path("/dev/shm") / board.name
        assert path.exists() and path.stat().st_mode & 0o077 == 0
        assert path.stat().st_uid == os.getuid()
    finally:
        board.close()
    assert not (Path("/dev/shm") / board.name).exists()


def test_figures_not_measured_yet_are_absent_not_zero() -> None:
    # Without gunicorn's when_ready hook the master's monitor never samples: no RSS, no
    # backlog. They must not read as 0 (an empty backlog, a worker using no memory).
    board = Scoreboard.create(1)
    try:
        board.write(0, 111, 5, [0] * len(COUNTERS))
        state = board.read()
        assert "listen_backlog" not in state and "monitor_sampled_ns" not in state
        assert "rss_bytes" not in state["workers"][0]
        board.set_rss(0, 50 << 20)
        board.set_server(0, 123)  # sampled: an empty backlog is now a known 0
        state = board.read()
        assert (state["listen_backlog"], state["monitor_sampled_ns"]) == (0, 123)
        assert state["workers"][0]["rss_bytes"] == 50 << 20
    finally:
        board.close()


def test_a_dead_workers_answered_but_unexported_records_are_counted_lost() -> None:
    board = Scoreboard.create(1)
    try:
        board.write(0, 111, 5, [0] * len(COUNTERS))
        board.set_answered(0, 40)
        board.set_exported(0, 33)
        assert board.release(0) == 7
        assert board.read()["records_lost"] == 7
        board.write(0, 112, 6, [0] * len(COUNTERS))
        board.set_answered(0, 5)
        board.set_exported(0, 5)
        assert board.release(0) == 0, "a worker that handed everything over loses nothing"
        assert board.read()["records_lost"] == 7
    finally:
        board.close()
