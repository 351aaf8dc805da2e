"""A Pinba collector for integration tests: every datagram sent to a loopback UDP port,
decoded with the reference decoder, while the test runs."""

from __future__ import annotations

import socket
import threading
from collections import Counter

from otel_bridge.exporters.pinba._proto import PinbaRequest, decode

__all__ = ["PinbaReader"]


class PinbaReader:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # A flood of 10,000 datagrams must not overflow the socket while the reader decodes.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[PinbaRequest] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self.packets.append(decode(self.sock.recv(65536)))
            except TimeoutError:
                continue

    @property
    def script_names(self) -> Counter[str]:
        return Counter(packet.script_name for packet in list(self.packets))

    @property
    def server_names(self) -> Counter[str]:
        return Counter(packet.server_name for packet in list(self.packets))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
