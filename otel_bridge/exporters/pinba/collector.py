"""A small Pinba collector for development: `otel-bridge pinba listen`.

Receives Pinba.Request datagrams (from otel_bridge, php-pinba or anything else), decodes them,
and prints a pinba2-style report per time window: requests and time percentiles per
script_name, counts per status, and timers aggregated by tag set. Memory is bounded: at most
`MAX_SAMPLES` request times are kept per script and window, and at most `MAX_KEYS` scripts
and timer tag sets (the rest are counted as overflow).
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from otel_bridge.exporters.pinba._proto import DecodeError, PinbaRequest, decode

__all__ = ["Report", "listen"]

MAX_SAMPLES = 100_000
MAX_KEYS = 1_000


@dataclass
class _Script:
    requests: int = 0
    times: list[float] = field(default_factory=list)
    cpu: float = 0.0
    traffic: int = 0


@dataclass
class _Timer:
    hits: int = 0
    total: float = 0.0
    requests: int = 0


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Report:
    """Aggregates decoded packets over one window and renders the report text."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.packets = 0
        self.malformed = 0
        self.overflow = 0
        self.hosts: set[str] = set()
        self.scripts: dict[str, _Script] = {}
        self.statuses: dict[int, int] = {}
        self.timers: dict[tuple[tuple[str, str], ...], _Timer] = {}

    def add_datagram(self, data: bytes) -> None:
        try:
            packet = decode(data)
        except DecodeError:
            self.malformed += 1
            return
        self.add(packet)

    def add(self, packet: PinbaRequest) -> None:
        self.packets += 1
        if len(self.hosts) < MAX_KEYS:
            self.hosts.add(packet.hostname)
        script = self.scripts.get(packet.script_name)
        if script is None:
            if len(self.scripts) >= MAX_KEYS:
                self.overflow += 1
                return
            script = self.scripts[packet.script_name] = _Script()
        script.requests += 1
        if len(script.times) < MAX_SAMPLES:
            script.times.append(packet.request_time)
        script.cpu += packet.ru_utime + packet.ru_stime
        script.traffic += packet.document_size
        self.statuses[packet.status] = self.statuses.get(packet.status, 0) + 1
        words = packet.dictionary
        offset = 0
        seen: set[tuple[tuple[str, str], ...]] = set()
        for index, count in enumerate(packet.timer_tag_count):
            names = packet.timer_tag_name[offset : offset + count]
            values = packet.timer_tag_value[offset : offset + count]
            offset += count
            try:
                pairs = zip(names, values, strict=True)
                key = tuple(sorted((words[n], words[v]) for n, v in pairs))
            except (IndexError, ValueError):
                self.malformed += 1
                continue
            timer = self.timers.get(key)
            if timer is None:
                if len(self.timers) >= MAX_KEYS:
                    self.overflow += 1
                    continue
                timer = self.timers[key] = _Timer()
            timer.hits += (
                packet.timer_hit_count[index] if index < len(packet.timer_hit_count) else 1
            )
            timer.total += packet.timer_value[index] if index < len(packet.timer_value) else 0.0
            if key not in seen:
                timer.requests += 1
                seen.add(key)

    def render(self, now: float | None = None) -> str:
        elapsed = max(1e-9, (time.monotonic() if now is None else now) - self.started)
        lines = [
            f"pinba report: {elapsed:.1f} s, {self.packets} packets from "
            f"{len(self.hosts)} host(s), {self.malformed} malformed"
            + (f", {self.overflow} over the key limit" if self.overflow else ""),
            "",
            f"{'script_name':<32} {'req':>7} {'req/s':>8} {'p50 ms':>9} {'p95 ms':>9} "
            f"{'p99 ms':>9} {'cpu ms/req':>11} {'kB/req':>8}",
        ]
        for name, script in sorted(self.scripts.items(), key=lambda item: -item[1].requests):
            ordered = sorted(script.times)
            lines.append(
                f"{name[:32]:<32} {script.requests:>7} {script.requests / elapsed:>8.1f} "
                f"{_percentile(ordered, 0.5) * 1e3:>9.2f} "
                f"{_percentile(ordered, 0.95) * 1e3:>9.2f} "
                f"{_percentile(ordered, 0.99) * 1e3:>9.2f} "
                f"{script.cpu / script.requests * 1e3:>11.2f} "
                f"{script.traffic / script.requests / 1024:>8.1f}"
            )
        statuses = "  ".join(f"{code}: {count}" for code, count in sorted(self.statuses.items()))
        lines += ["", f"by status: {statuses or '-'}", ""]
        if self.timers:
            lines.append(f"{'timer tags':<48} {'hits':>7} {'total ms':>10} {'ms/req':>8}")
            ranked = sorted(self.timers.items(), key=lambda item: -item[1].total)
            for key, timer in ranked:
                label = ",".join(f"{name}={value}" for name, value in key) or "(no tags)"
                lines.append(
                    f"{label[:48]:<48} {timer.hits:>7} {timer.total * 1e3:>10.2f} "
                    f"{timer.total / max(1, timer.requests) * 1e3:>8.2f}"
                )
        return "\n".join(lines) + "\n"


def listen(
    host: str = "127.0.0.1",
    port: int = 30002,
    interval: float = 10.0,
    out: TextIO = sys.stdout,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Receive and report until interrupted (Ctrl-C) or `stop()` says so; returns 0."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))
        sock.setblocking(False)
        bound = sock.getsockname()
        print(
            f"pinba collector listening on {bound[0]}:{bound[1]} (UDP), "
            f"a report every {interval:g} s when packets arrive; Ctrl-C stops",
            file=out,
            flush=True,
        )
        report = Report()
        deadline = time.monotonic() + interval
        try:
            while not stop():
                timeout = max(0.0, min(0.5, deadline - time.monotonic()))
                readable, _, _ = select.select([sock], [], [], timeout)
                if readable:
                    for _ in range(1024):
                        try:
                            data = sock.recv(65536)
                        except BlockingIOError:
                            break
                        report.add_datagram(data)
                if time.monotonic() >= deadline:
                    if report.packets or report.malformed:
                        print(report.render(), file=out, flush=True)
                    report = Report()
                    deadline = time.monotonic() + interval
        except KeyboardInterrupt:
            pass
        if report.packets or report.malformed:
            print(report.render(), file=out, flush=True)
    return 0
