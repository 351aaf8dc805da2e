"""The UDP sender's send path: libc's send() with the GIL held, where there is one."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from otel_bridge._health import Health
from otel_bridge.exporters.pinba import _sender
from otel_bridge.exporters.pinba._sender import UDPSender


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_datagrams_arrive_whole_and_failures_are_counted(collector: socket.socket) -> None:
    assert _sender._send is not None  # Linux: the GIL-holding path is the one under test
    health = Health()
    sender = UDPSender([collector.getsockname()], health)
    payloads = [bytes([i]) * (100 + i) for i in range(5)] + [b"\x00in\x00side\x00"]
    for payload in payloads:
        assert sender.send(payload) == 1
    assert [collector.recv(65536) for _ in payloads] == payloads
    # Too large for UDP: the kernel refuses it (EMSGSIZE), the sender counts it, never raises.
    assert sender.send(b"x" * 70_000) == 0
    assert health.errors["exporter.pinba.send"] == 1
    sender.close()


def _voluntary_switches(native_id: int) -> int:
    with open(f"/proc/self/task/{native_id}/status") as status:
        for line in status:
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def test_a_send_keeps_the_gil(collector: socket.socket) -> None:
    # A busy thread waits for the GIL the whole time. socket.send() releases the GIL for each
    # system call: the busy thread is woken for every datagram and takes the GIL for up to a
    # switch interval (5 ms) each time, which is what made a request thread wait on the
    # exporter. The GIL-holding send wakes it only when the interpreter's own interval
    # forces a switch.
    assert _sender._send is not None
    sender = UDPSender([collector.getsockname()], Health())
    sender.send(b"warm")
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            pass

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    time.sleep(0.01)
    assert thread.native_id is not None
    before = _voluntary_switches(thread.native_id)
    sends = 200
    for _ in range(sends):
        sender.send(b"p" * 64)
    woken = _voluntary_switches(thread.native_id) - before
    stop.set()
    thread.join()
    sender.close()
    assert woken < sends / 4, woken
