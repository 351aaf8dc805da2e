"""Slow clients on `/debug/vars` against the app's own latency, side by side in one run.

    python -m benchmarks.slow_clients            # print the table
    python -m benchmarks.slow_clients --json     # one JSON object

uvicorn serves the Starlette app with every view on (BENCH_CONFIG=bridge_all); wrk measures
the app's /hello (1 thread, 16 connections, 5 s) alone, then while 100 slow readers of
`/debug/vars` (256 bytes every 50 ms, then the next request) and 20 slowloris clients (a
header line every 0.2 s) hold connections; three rounds, interleaved; medians reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.http import served, wrk

ROOT = Path(__file__).resolve().parents[1]


class SlowClients(threading.Thread):
    """For `seconds`: `readers` connections that each ask for `path` and read the answer 256
    bytes every 50 ms, then ask again on the same connection (their first requests spread over
    a second, as independent clients' would be); and `loris` connections that send a
    `/debug/vars` request one header line every 0.2 s."""

    def __init__(
        self, port: int, readers: int, loris: int, seconds: float, path: str = "/debug/vars"
    ) -> None:
        super().__init__(name="slow-clients", daemon=True)
        self.port, self.readers, self.loris, self.seconds = port, readers, loris, seconds
        # As a local scraper sends it (a Host that is not loopback is refused by default).
        host = f"127.0.0.1:{port}"
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.connected = 0
        self.answers = 0
        self.refused = 0  # answers other than 200: the run measured something else
        self.ready = threading.Event()

    def _open(self, first: bytes) -> socket.socket | None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", self.port))
            if first:
                sock.sendall(first)
        except OSError:
            sock.close()
            return None
        sock.setblocking(False)
        self.connected += 1
        return sock

    def run(self) -> None:
        readers: list[socket.socket] = []
        loris: list[socket.socket] = []
        try:
            readers = [s for _ in range(self.readers) if (s := self._open(b""))]
            loris = [
                s
                for _ in range(self.loris)
                if (s := self._open(b"GET /debug/vars HTTP/1.1\r\nHost: 127.0.0.1\r\n"))
            ]
            self.ready.set()
            received = dict.fromkeys(readers, b"")
            deadline = time.monotonic() + self.seconds
            tick = 0
            while time.monotonic() < deadline:
                time.sleep(0.05)
                tick += 1
                for index, sock in enumerate(readers):
                    if tick <= 20 and index % 20 == tick - 1:
                        sock.send(self.request)  # the first request, spread over a second
                    try:
                        chunk = sock.recv(256)
                    except BlockingIOError:
                        continue
                    except OSError:
                        continue
                    received[sock] += chunk
                    if _complete(received[sock]):
                        self.answers += 1
                        if not received[sock].startswith(b"HTTP/1.1 200"):
                            self.refused += 1
                        received[sock] = b""
                        sock.send(self.request)
                if tick % 4 == 0:
                    for sock in loris:
                        try:
                            sock.send(b"X-Slow-%d: x\r\n" % tick)
                        except OSError:
                            pass
        finally:
            self.ready.set()
            for sock in readers + loris:
                sock.close()


def _complete(data: bytes) -> bool:
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@contextmanager
def slow_clients(
    port: int, readers: int, loris: int, seconds: float, path: str = "/debug/vars"
) -> Iterator[SlowClients]:
    """Run SlowClients against 127.0.0.1:`port` for the block (started and connected)."""
    held = SlowClients(port, readers, loris, seconds, path)
    held.start()
    held.ready.wait(30)
    try:
        yield held
    finally:
        held.join(seconds + 30)


def _wrk(port: int, seconds: int) -> dict[str, float]:
    return wrk(port, seconds, connections=16)


def run(rounds: int = 3, seconds: int = 5) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: scripts/system-deps wrk")
    runs: dict[str, list[dict[str, float]]] = {"alone": [], "with slow clients": []}
    with served("starlette", "bridge_all") as port:
        _wrk(port, 1)  # warm up
        for _ in range(rounds):
            runs["alone"].append(_wrk(port, seconds))
            with slow_clients(port, readers=100, loris=20, seconds=seconds + 1) as held:
                cell = _wrk(port, seconds)
            if held.refused:
                raise SystemExit(f"{held.refused} of the slow readers' requests were refused")
            cell["scrapes_per_s"] = held.answers / (seconds + 1)
            runs["with slow clients"].append(cell)
    return {
        name: {key: statistics.median(r[key] for r in cells) for key in cells[-1]}
        for name, cells in runs.items()
    }


def table(result: dict[str, Any]) -> str:
    alone = result["alone"]
    lines = [
        "| uvicorn, all views, /hello | req/s | p50 ms | p99 ms | p99 vs alone "
        "| /debug/vars answers/s to the slow readers |",
        "|---|---|---|---|---|---|",
    ]
    for name, cell in result.items():
        ratio = cell["p99_ms"] / alone["p99_ms"]
        lines.append(
            f"| {name} | {cell['rps']:,.0f} | {cell['p50_ms']:.2f} | {cell['p99_ms']:.2f} "
            f"| {ratio:.2f}x | {cell.get('scrapes_per_s', 0):.0f} |"
        )
    return "\n".join(lines)


def section(result: dict[str, Any], command: str) -> str:
    """The RESULTS.md section for `result`."""
    return "\n".join(
        [
            "## Slow clients on `/debug/vars`",
            "",
            "100 slow readers (256 bytes every 50 ms, then the next request) and 20 slowloris",
            "clients (a header line every 0.2 s) against the app's own latency under wrk; median",
            f"of 3 rounds, interleaved. Command: `{command}`.",
            "",
            table(result),
            "",
        ]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    outcome = run()
    print(
        json.dumps(outcome)
        if options.json
        else section(outcome, "python -m benchmarks.slow_clients")
    )
