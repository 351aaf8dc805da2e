"""Pinba encode + send, ours against the `protobuf` package (upb) for the same message.

A request with 5 timers of 3 tags each and 3 request tags. Ours starts from the
`RequestRecord` (merging timers, building the dictionary, encoding); the protobuf side is handed
the finished field values and only builds the message and serialises it. Both then `sendto`
the datagram to a UDP socket bound on 127.0.0.1 (drained between rounds).
"""

from __future__ import annotations

import socket
import statistics
import time
from types import MappingProxyType
from typing import Any

from otel_bridge.exporters.pinba import PinbaExporter
from otel_bridge.exporters.pinba._packet import (
    PacketFields,
    PacketTimer,
    merge_timers,
    message,
    timer_tags,
)
from otel_bridge.exporters.pinba._proto import decode
from otel_bridge.record import EMPTY, RequestRecord, Timer
from tests.exporters.pinba.reference import FIELDS
from tests.exporters.pinba.reference import request_class as reference_class

SCALARS = (
    "hostname",
    "server_name",
    "script_name",
    "request_count",
    "document_size",
    "memory_peak",
    "request_time",
    "ru_utime",
    "ru_stime",
    "status",
    "memory_footprint",
)
REPEATED = tuple(name for _, name, label, _ in FIELDS if label == "repeated")


def sample_record() -> RequestRecord:
    timers = tuple(
        Timer(
            name=f"t{i}",
            kind="custom",
            tags=(
                ("group", "db"),
                ("op", ("select", "update", "insert")[i % 3]),
                ("table", f"table{i}"),
            ),
            start_ns=i * 1000,
            duration_ns=1_000_000 * (i + 1),
            ru_utime_ns=50_000,
            ru_stime_ns=10_000,
            error_type=None,
        )
        for i in range(5)
    )
    return RequestRecord(
        interface="asgi",
        method="GET",
        method_original="GET",
        route="/users/{uid}",
        path="/users/42",
        query="",
        scheme="http",
        protocol_version="1.1",
        server_address="shop.example",
        server_port=443,
        client_address="10.0.0.1",
        client_port=5000,
        user_agent="bench",
        headers=EMPTY,
        status=200,
        response_bytes=1234,
        completed=True,
        start_time_ns=0,
        duration_ns=12_000_000,
        app_duration_ns=12_000_000,
        ru_utime_ns=2_000_000,
        ru_stime_ns=500_000,
        max_rss_bytes=50_000_000,
        timers=timers,
        timers_dropped=0,
        fields=EMPTY,
        timed_out=False,
        tags=MappingProxyType({"country": "fr", "plan": "pro", "ab": "b"}),
        exception=None,
        error_type=None,
        trace_id=1,
        span_id=2,
        sampled=True,
        attributes=EMPTY,
        resource=EMPTY,
        pid=1,
        thread_id=1,
    )


def run(n: int = 20_000, repeats: int = 5) -> dict[str, float]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.setblocking(False)
    address = receiver.getsockname()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    exporter = PinbaExporter([address], hostname="web-1")
    record = sample_record()
    reference = decode(exporter.packet(record) or b"")
    request_class = reference_class()

    def drain() -> None:
        while True:
            try:
                receiver.recv(65536)
            except BlockingIOError:
                return

    def ours() -> None:
        data = exporter.packet(record)
        assert data is not None
        try:
            sender.sendto(data, address)
        except BlockingIOError:
            pass

    def protobuf_from_record() -> None:
        # The same path as ours, with the protobuf package as the encoder: merge the timers
        # and build the dictionary in Python (our pure functions), fill the message, send.
        fields = PacketFields(
            exporter.hostname,
            record.server_address or "unknown",
            exporter.script_name(record),
            1,
            record.response_bytes,
            record.max_rss_bytes,
            0,
            record.duration_ns / 1e9,
            record.ru_utime_ns / 1e9,
            record.ru_stime_ns / 1e9,
            record.status,
            record.scheme,
        )
        timers = merge_timers(
            PacketTimer(
                timer_tags(t.tags),
                t.duration_ns / 1e9,
                t.hit_count,
                t.ru_utime_ns / 1e9,
                t.ru_stime_ns / 1e9,
            )
            for t in sorted(record.timers, key=lambda t: t.start_ns)
        )
        built = message(fields, {**exporter.tags, **record.tags}, timers)
        fill_and_send(built)

    def fill_and_send(built: Any) -> None:
        out = request_class()
        for name in SCALARS:
            setattr(out, name, getattr(built, name))
        if built.schema:
            out.schema = built.schema
        for name in REPEATED:
            getattr(out, name).extend(getattr(built, name))
        try:
            sender.sendto(out.SerializeToString(), address)
        except BlockingIOError:
            pass

    def theirs() -> None:
        message = request_class()
        message.hostname = reference.hostname
        message.server_name = reference.server_name
        message.script_name = reference.script_name
        message.request_count = reference.request_count
        message.document_size = reference.document_size
        message.memory_peak = reference.memory_peak
        message.request_time = reference.request_time
        message.ru_utime = reference.ru_utime
        message.ru_stime = reference.ru_stime
        message.timer_hit_count.extend(reference.timer_hit_count)
        message.timer_value.extend(reference.timer_value)
        message.timer_tag_count.extend(reference.timer_tag_count)
        message.timer_tag_name.extend(reference.timer_tag_name)
        message.timer_tag_value.extend(reference.timer_tag_value)
        message.dictionary.extend(reference.dictionary)
        message.status = reference.status
        message.memory_footprint = reference.memory_footprint
        message.schema = reference.schema
        message.tag_name.extend(reference.tag_name)
        message.tag_value.extend(reference.tag_value)
        message.timer_ru_utime.extend(reference.timer_ru_utime)
        message.timer_ru_stime.extend(reference.timer_ru_stime)
        try:
            sender.sendto(message.SerializeToString(), address)
        except BlockingIOError:
            pass

    results: dict[str, list[float]] = {"ours": [], "protobuf": [], "protobuf_fields": []}
    for _ in range(repeats):
        cells = (("ours", ours), ("protobuf", protobuf_from_record), ("protobuf_fields", theirs))
        for name, func in cells:
            drain()
            start = time.perf_counter()
            for _ in range(n):
                func()
            results[name].append((time.perf_counter() - start) / n * 1e6)
    drain()
    receiver.close()
    sender.close()
    medians = {name: statistics.median(values) for name, values in results.items()}
    medians["ratio"] = medians["ours"] / medians["protobuf"]
    medians["ratio_fields"] = medians["ours"] / medians["protobuf_fields"]
    medians["bytes"] = float(len(exporter.packet(record) or b""))
    return medians


if __name__ == "__main__":
    print(run())
