"""Non-blocking UDP sending to one or more Pinba collectors.

Runs on the bridge's exporter thread only, so name resolution (at first use, then every
`resolve_interval` seconds) never happens on a request. A send that fails (no route, buffer
full, ICMP port unreachable reported on the socket) drops that datagram and counts it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from otel_bridge._failsafe import Health

__all__ = ["UDPSender"]


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
        self._resolved: dict[tuple[str, int], tuple[int, Any]] = {}
        self._resolved_at: float | None = None
        self._sockets: dict[int, socket.socket] = {}

    def _resolve(self) -> None:
        for endpoint in self._endpoints:
            try:
                family, _, _, _, address = socket.getaddrinfo(
                    endpoint[0], endpoint[1], type=socket.SOCK_DGRAM
                )[0]
            except OSError as exc:
                # Keep sending to the last address that resolved, if any.
                self.health.error("exporter.pinba.resolve", exc)
                continue
            self._resolved[endpoint] = (family, address)
        self._resolved_at = self._clock()

    def _socket(self, family: int) -> socket.socket:
        sock = self._sockets.get(family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            self._sockets[family] = sock
        return sock

    def send(self, datagram: bytes) -> int:
        """Send to every collector; returns how many sends succeeded."""
        now = self._clock()
        if self._resolved_at is None or now - self._resolved_at >= self._interval:
            self._resolve()
        sent = 0
        for family, address in self._resolved.values():
            try:
                self._socket(family).sendto(datagram, address)
                sent += 1
            except OSError as exc:
                self.health.error("exporter.pinba.send", exc)
        return sent

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
