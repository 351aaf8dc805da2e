"""Non-blocking UDP sending to one or more Pinba collectors.

Runs on the bridge's exporter thread only, so name resolution (at first use, then every
`resolve_interval` seconds) never happens on a request. Each collector gets a connected UDP
socket: a collector that refuses (ICMP port unreachable) then shows up as an error on the next
send, counted as `exporter.pinba.send`, where an unconnected socket would lose the datagrams
without a word. A send that fails (refused, no route, buffer full) drops that datagram.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from otel_bridge._health import Health

__all__ = ["UDPSender"]


def _gil_holding_send() -> Callable[[int, bytes], None] | None:
    """libc's send() called without releasing the GIL, or None where that is not available.

    `socket.send()` releases the GIL around every system call. With a busy request thread
    waiting for it, each datagram then hands the GIL over and back: two context switches per
    request, which cost the server several times the send itself (measured over HTTP: ~2
    voluntary switches per request on the exporter thread). The sockets are non-blocking, so
    holding the GIL for the ~2 µs of a loopback send() blocks nothing.
    """
    try:
        import ctypes
        import os

        if os.name != "posix":
            return None
        libc = ctypes.PyDLL(None, use_errno=True)  # PyDLL: the GIL stays held during calls
        send = libc.send
    except (ImportError, OSError, AttributeError):
        return None
    send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
    send.restype = ctypes.c_ssize_t
    get_errno = ctypes.get_errno

    def gil_send(fd: int, data: bytes) -> None:
        if send(fd, data, len(data), 0) < 0:
            code = get_errno()
            raise OSError(code, os.strerror(code))

    return gil_send


_send = _gil_holding_send()


# A resolution slower than this is counted and logged (once, then summarised).
SLOW_RESOLVE_S = 0.5


class UDPSender:
    """Sends each datagram to every endpoint; never raises, never blocks."""

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        health: Health,
        *,
        resolve_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoints = tuple(endpoints)
        self.health = health
        self._interval = resolve_interval
        self._clock = clock
        # endpoint → (the address it resolved to, a socket connected to that address)
        self._connected: dict[tuple[str, int], tuple[Any, socket.socket]] = {}
        self._resolved_at: float | None = None

    def _resolve(self) -> None:
        for endpoint in self._endpoints:
            started = self._clock()
            try:
                family, _, _, _, address = socket.getaddrinfo(
                    endpoint[0], endpoint[1], type=socket.SOCK_DGRAM
                )[0]
            except OSError as exc:
                # Keep sending to the last address that resolved, if any.
                self.health.error("exporter.pinba.resolve", exc)
                continue
            finally:
                took = self._clock() - started
                if took >= SLOW_RESOLVE_S:
                    # Only the Pinba view waits (it has a lane of its own), but it is behind.
                    self.health.error(
                        "exporter.pinba.resolve_slow",
                        TimeoutError(f"resolving {endpoint[0]} took {took:.1f} s"),
                    )
            current = self._connected.get(endpoint)
            if current is not None and current[0] == address:
                continue
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setblocking(False)
                sock.connect(address)  # UDP: sets the destination, sends nothing
            except OSError as exc:
                sock.close()
                self.health.error("exporter.pinba.connect", exc)
                continue
            if current is not None:
                current[1].close()
            self._connected[endpoint] = (address, sock)
        self._resolved_at = self._clock()

    def send(self, datagram: bytes) -> int:
        """Send to every collector; returns how many sends succeeded."""
        now = self._clock()
        if self._resolved_at is None or now - self._resolved_at >= self._interval:
            self._resolve()
        sent = 0
        for _, sock in self._connected.values():
            try:
                if _send is not None:
                    _send(sock.fileno(), datagram)
                else:
                    sock.send(datagram)
                sent += 1
            except OSError as exc:
                self.health.error("exporter.pinba.send", exc)
        return sent

    def close(self) -> None:
        for _, sock in self._connected.values():
            sock.close()
        self._connected.clear()
