"""The `uvicorn --workers` scoreboard segment (otel_bridge._supervised) stays out of Python's
resource tracker: the workers share the supervisor's tracker, and two that start together
made it print a KeyError traceback at the server's stop."""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]
import os
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import pytest

from otel_bridge import _supervised


def test_the_segment_is_never_registered_with_the_resource_tracker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[Any] = []

    def recording(name: Any, rtype: str) -> None:
        registered.append((name, rtype))

    monkeypatch.setattr(resource_tracker, "register", recording)
    name = f"otel_bridge_test_{os.getpid()}"
    created = _supervised._untracked(name, create=True, size=4096)
    try:
        assert created.buf is not None
        created.buf[:5] = b"hello"
        attached = _supervised._untracked(name, create=False, size=0)  # another worker
        assert attached.buf is not None and bytes(attached.buf[:5]) == b"hello"
        attached.close()
    finally:
        created.close()
        _posixshmem.shm_unlink(created._name)  # type: ignore[attr-defined]
    assert registered == []
    # Put back: SharedMemory's own reference, and so nothing else of multiprocessing's.
    assert shared_memory.resource_tracker is resource_tracker  # type: ignore[attr-defined]
    assert resource_tracker.register is recording
