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
