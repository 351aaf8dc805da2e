"""`PinbaExporter`: RequestRecord → Pinba.Request datagram → UDP, on the bridge's thread."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from operator import attrgetter
from typing import Any

from otel_bridge._compiled import set_up
from otel_bridge._health import Health
from otel_bridge._hosts import HostLabels
from otel_bridge.config import Settings
from otel_bridge.exporters.pinba._encoder import PacketEncoder
from otel_bridge.exporters.pinba._packet import PacketFields, PacketTimer, assemble, timer_tags
from otel_bridge.exporters.pinba._sender import UDPSender
from otel_bridge.record import RecordExporter, RequestRecord, Timer, route_label

__all__ = ["PinbaExporter"]

TAG_CACHE_SIZE = 4096
_START = attrgetter("start_ns")


def _compiled_timers() -> Any:
    """otel_bridge._speedups' `pinba_timers(timers, cache)`: a packet's timer part as
    `PinbaExporter._timers` and `PacketEncoder._timer_fields` make it, or None where it leaves
    it to them; None without the C core."""
    fields = Timer._fields
    module = set_up(
        "setup_pinba",
        tags=fields.index("tags"),
        start=fields.index("start_ns"),
        duration=fields.index("duration_ns"),
        utime=fields.index("ru_utime_ns"),
        stime=fields.index("ru_stime_ns"),
        hits=fields.index("hit_count"),
    )
    return module.pinba_timers if module is not None else None


_COMPILED_TIMERS = _compiled_timers()
_new_fields = _new_timer = tuple.__new__
# php-pinba's own fallback when a request has no server or script name.
UNKNOWN = "unknown"
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _Footprint:
    """Resident memory of the process, read at most once a second (a /proc read is ~20 µs)."""

    def __init__(self) -> None:
        self._value = 0
        self._read_at = -1.0

    def __call__(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= 1.0:
            self._read_at = now
            try:
                with open("/proc/self/statm", "rb") as statm:
                    self._value = int(statm.read().split()[1]) * _PAGE_SIZE
            except (OSError, ValueError, IndexError):
                self._value = 0
        return self._value


class PinbaExporter(RecordExporter):
    """Sends one Pinba datagram per finished request.

    Args:
        endpoints: collectors as (host, port).
        hostname: `hostname` field; default the machine's name.
        server_name: `server_name`; default the request's Host, when one of
            `allowed_hosts` (`otel_bridge._hosts`: bounded).
        script_name: ``"route"`` (template, bounded) or ``"path"``.
        unrouted_by_path: with ``"route"``, a request no route matched is named by its path
            rather than its status (`route_label`).
        allowed_hosts: the app's hosts, as Django's ``ALLOWED_HOSTS``.
        tags: request tags added to every packet.
        max_packet_size: bytes; larger packets lose their smallest timers first.
        resolve_interval: seconds between DNS resolutions of the endpoints.

    Never raises into the app: failures are counted under ``exporter.pinba.*``.
    """

    name = "pinba"

    def __init__(
        self,
        endpoints: Sequence[tuple[str, int]],
        *,
        hostname: str | None = None,
        server_name: str | None = None,
        script_name: str = "route",
        tags: Mapping[str, str] | None = None,
        max_packet_size: int = 65507,
        resolve_interval: float = 60.0,
        unrouted_by_path: bool = False,
        allowed_hosts: Sequence[str] = (),
        compiled: bool = True,
    ) -> None:
        self.health = Health()
        self._endpoints = tuple(endpoints)
        self._sender = UDPSender(self._endpoints, self.health, resolve_interval=resolve_interval)
        self.hostname = hostname or socket.gethostname()
        self.server_name = server_name
        self.use_path = script_name == "path"
        self.unrouted_by_path = unrouted_by_path
        self.host_label = HostLabels(allowed_hosts)
        self.tags = dict(tags or {})
        self.max_packet_size = max_packet_size
        self.requests = 0
        self._footprint = _Footprint()
        self._encoder = PacketEncoder()
        self._tag_cache: dict[tuple[tuple[str, object], ...], tuple[tuple[str, str], ...]] = {}
        # The timers' part of a packet in C, where it is built and allowed.
        self._compiled_timers = _COMPILED_TIMERS if compiled else None

    @classmethod
    def from_settings(cls, settings: Settings) -> PinbaExporter:
        """Build from `OTEL_EXPORTER_PINBA_*` (already validated by `Settings`)."""
        return cls(
            settings.pinba_endpoint,
            hostname=settings.pinba_hostname,
            server_name=settings.pinba_server_name,
            script_name=settings.pinba_script_name,
            tags=dict(settings.pinba_tags),
            max_packet_size=settings.pinba_max_packet_size,
            resolve_interval=settings.pinba_resolve_interval,
            unrouted_by_path=settings.unrouted == "path",
            allowed_hosts=settings.allowed_hosts,
            compiled=not settings.pure_python,
        )

    def attach(self, health: Health) -> None:
        self.health = health
        self._sender.health = health

    def script_name(self, record: RequestRecord) -> str:
        """The packet's `script_name`: the route, else a label of the status (bounded:
        `route_label`); the path when asked for it; a job's name."""
        if self.use_path or record.interface == "job":
            return record.route or record.path or UNKNOWN
        return route_label(record, self.unrouted_by_path) or UNKNOWN

    def packet(self, record: RequestRecord) -> bytes | None:
        """The datagram for `record`, trimmed to `max_packet_size`; None if it cannot fit."""
        self.requests += 1
        # The timers' tags and bytes made in C (None: the Python code makes them).
        parts = None
        if record.timers and self._compiled_timers is not None:
            parts = self._compiled_timers(record.timers, self._tag_cache)
        timers = self._timers(record.timers) if record.timers and parts is None else []
        if not record.tags:
            tags: Mapping[str, str] = self.tags
        elif not self.tags:
            tags = record.tags
        else:
            tags = {**self.tags, **record.tags}
        script_name = self.script_name(record)
        # Positional, in field order: tuple.__new__ skips the named tuple's argument binding.
        fields = _new_fields(
            PacketFields,
            (
                self.hostname,
                self.server_name or self.host_label(record.server_address) or UNKNOWN,
                script_name,
                self.requests,
                record.response_bytes,
                record.max_rss_bytes,
                self._footprint(),
                record.duration_ns / 1e9,
                record.ru_utime_ns / 1e9,
                record.ru_stime_ns / 1e9,
                record.status,
                "" if record.interface == "job" else record.scheme,
            ),
        )
        if parts is not None:
            data = self._encoder.encode_parts(fields, tags, *parts)
        else:
            data = self._encoder.encode(fields, tags, timers)
        if len(data) <= self.max_packet_size:
            return data
        if parts is not None:
            timers = self._timers(record.timers)
        return self._trimmed(fields, tags, timers)

    def _timers(self, timers: Sequence[Timer]) -> list[PacketTimer]:
        # As php-pinba: creation order (records hold timers by end), identical tag sets merged,
        # times kept in whole microseconds. Sorted tag tuples are cached per raw tag tuple.
        cache = self._tag_cache
        if len(timers) == 1:
            # The usual request of a few queries has one or two: no merging for one.
            timer = timers[0]
            tags = cache.get(timer.tags)
            if tags is None:
                if len(cache) >= TAG_CACHE_SIZE:
                    cache.clear()
                tags = cache[timer.tags] = timer_tags(timer.tags)
            return [
                _new_timer(
                    PacketTimer,
                    (
                        tags,
                        timer.duration_ns // 1000 / 1e6,
                        timer.hit_count,
                        timer.ru_utime_ns // 1000 / 1e6,
                        timer.ru_stime_ns // 1000 / 1e6,
                    ),
                )
            ]
        merged: dict[tuple[tuple[str, str], ...], list[int]] = {}
        for timer in sorted(timers, key=_START) if len(timers) > 1 else timers:
            tags = cache.get(timer.tags)
            if tags is None:
                if len(cache) >= TAG_CACHE_SIZE:
                    cache.clear()
                tags = cache[timer.tags] = timer_tags(timer.tags)
            entry = merged.get(tags)
            if entry is None:
                merged[tags] = [
                    timer.duration_ns // 1000,
                    timer.hit_count,
                    timer.ru_utime_ns // 1000,
                    timer.ru_stime_ns // 1000,
                ]
            else:
                entry[0] += timer.duration_ns // 1000
                entry[1] += timer.hit_count
                entry[2] += timer.ru_utime_ns // 1000
                entry[3] += timer.ru_stime_ns // 1000
        return [
            PacketTimer(tags, value / 1e6, hits, utime / 1e6, stime / 1e6)
            for tags, (value, hits, utime, stime) in merged.items()
        ]

    def _trimmed(
        self, fields: PacketFields, tags: Mapping[str, str], timers: list[PacketTimer]
    ) -> bytes | None:
        # Keep the longest timers that fit (binary search on how many), in their order.
        ranked = sorted(range(len(timers)), key=lambda i: timers[i].value, reverse=True)

        def with_top(count: int, request_tags: Mapping[str, str]) -> bytes:
            keep = sorted(ranked[:count])
            return assemble(fields, request_tags, [timers[i] for i in keep])

        low, high = 0, len(timers)
        best: bytes | None = None
        while low <= high:
            middle = (low + high) // 2
            data = with_top(middle, tags)
            if len(data) <= self.max_packet_size:
                best, low = data, middle + 1
            else:
                high = middle - 1
        if best is not None:
            self.health.drop("pinba.timers_trimmed", len(timers) - high)
            return best
        data = with_top(0, {})
        if len(data) <= self.max_packet_size:
            self.health.drop("pinba.timers_trimmed", len(timers))
            self.health.drop("pinba.tags_trimmed", len(tags))
            return data
        self.health.drop("pinba.packet_too_large")
        return None

    def export(self, records: Sequence[RequestRecord]) -> None:
        sent = 0
        for record in records:
            try:
                data = self.packet(record)
            except Exception as exc:  # noqa: BLE001 - one bad record must not stop the rest
                self.health.error("exporter.pinba.encode", exc)
                continue
            if data is not None and self._sender.send(data):
                sent += 1
        if sent:
            self.health.count("pinba.packets_sent", sent)

    def shutdown(self) -> None:
        self._sender.close()
