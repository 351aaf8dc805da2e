"""The watchdog thread follows the process across fork(): a child that goes on serving gets a
watchdog thread of its own (the parent's does not exist there)."""

from __future__ import annotations

import textwrap

from tests.integration.servers import run_python


def test_a_forked_child_starts_its_own_watchdog_thread() -> None:
    code = textwrap.dedent(
        """
        import os, threading
        from otel_bridge._watchdog import Watchdog

        class Builder:
            pass

        watchdog = Watchdog(30.0, lambda builder: None)
        watchdog.add(Builder())
        parent_thread = watchdog._thread
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            # The parent's thread is not running here: add() must start another.
            stale = parent_thread.is_alive() and parent_thread in threading.enumerate()
            watchdog.add(Builder())
            fresh = watchdog._thread is not parent_thread and watchdog._thread.is_alive()
            os.write(write, f"{stale} {fresh} {len(watchdog._inflight)}".encode())
            os._exit(0)
        os.waitpid(pid, 0)
        watchdog.add(Builder())  # the parent keeps its thread and its requests
        print(os.read(read, 100).decode(), watchdog._thread is parent_thread,
              len(watchdog._inflight))
        watchdog.stop()
        """
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    # Child: no live parent thread, a new thread, and only its own request in flight;
    # parent: the same thread, both of its requests.
    assert result.stdout.split() == ["False", "True", "1", "True", "2"]
