"""RecordAssembler: spans from a BatchSpanProcessor become one record per server span, however
the batches split them, with bounded buffers."""

from __future__ import annotations

import itertools

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, set_span_in_context

import otel_bridge
from otel_bridge._context import mode
from otel_bridge._health import Health
from otel_bridge.zerocode import RecordAssembler


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def request(provider: TracerProvider, path: str, children: int = 2) -> None:
    """A server span as the contrib ASGI instrumentation makes it, with nested children."""
    tracer = provider.get_tracer("opentelemetry.instrumentation.asgi")
    server = tracer.start_span(
        "GET /items/{id}",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "url.path": path,
            "url.scheme": "http",
            "http.route": "/items/{id}",
            "server.address": "127.0.0.1:8000",
            "client.address": "10.0.0.9",
            "user_agent.original": "curl/8",
        },
    )
    context = set_span_in_context(server)
    send = tracer.start_span("GET /items/{id} http send", context=context)
    send.set_attribute("asgi.event.type", "http.response.start")
    send.end()
    db = provider.get_tracer("opentelemetry.instrumentation.psycopg").start_span(
        "SELECT", context=context, kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
    )
    inner = provider.get_tracer("app").start_span("parse", context=set_span_in_context(db))
    inner.end()
    db.end()
    for index in range(children - 1):
        provider.get_tracer("app").start_span(f"step{index}", context=context).end()
    server.set_attribute("http.response.status_code", 200)
    server.end()


def test_every_split_of_the_batches_gives_the_same_records(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    request(provider, "/items/1")
    request(provider, "/items/2", children=3)
    finished: list[ReadableSpan] = list(exporter.get_finished_spans())
    expected = None
    for cut_a, cut_b in itertools.combinations(range(len(finished) + 1), 2):
        health = Health()
        assembler = RecordAssembler(health)
        records = [
            *assembler.add(finished[:cut_a]),
            *assembler.add(finished[cut_a:cut_b]),
            *assembler.add(finished[cut_b:]),
        ]
        summary = [
            (r.path, r.route, r.status, r.server_address, r.server_port, [t.name for t in r.timers])
            for r in records
        ]
        if expected is None:
            expected = summary
        assert summary == expected, (cut_a, cut_b)
        assert assembler.pending_spans == 0, "nothing left waiting"
        assert health.dropped == {}
    assert expected == [
        ("/items/1", "/items/{id}", 200, "127.0.0.1", 8000, ["SELECT", "parse", "step0"]),
        ("/items/2", "/items/{id}", 200, "127.0.0.1", 8000, ["SELECT", "parse", "step0", "step1"]),
    ]


def test_spans_without_a_server_span_are_bounded_and_counted(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("app")
    for index in range(30):  # background jobs: no request, so no server span ever comes
        with tracer.start_as_current_span(f"job{index}"):
            tracer.start_span("child").end()
    health = Health()
    assembler = RecordAssembler(health, max_traces=8, max_spans=1)
    assert assembler.add(exporter.get_finished_spans()) == []
    assert assembler.pending_spans == 8, "at most max_traces traces wait"
    assert health.dropped["zerocode.spans_over_limit"] == 30, "one span per trace kept"
    assert health.dropped["zerocode.orphan_spans"] == 22


def test_server_spans_of_the_wrapper_are_left_to_the_wrapper(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    tracer = provider.get_tracer("otel_bridge")
    with tracer.start_as_current_span(
        "GET", kind=SpanKind.SERVER, attributes={"http.request.method": "GET"}
    ):
        provider.get_tracer("app").start_span("child").end()
    assembler = RecordAssembler(Health())
    assert assembler.add(exporter.get_finished_spans()) == []
    assert assembler.pending_spans == 0


def test_tags_and_fields_ride_on_span_attributes_in_zero_code_mode(
    spans: tuple[TracerProvider, InMemorySpanExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, exporter = spans
    monkeypatch.setattr(mode, "zerocode", True)
    tracer = provider.get_tracer("opentelemetry.instrumentation.wsgi")
    with tracer.start_as_current_span(
        "GET", kind=SpanKind.SERVER, attributes={"http.method": "GET", "http.target": "/a?b=1"}
    ):
        otel_bridge.tag(shard=3, premium=True)
        otel_bridge.wide_event.set(cart=2)
        otel_bridge.wide_event.incr("lookups")
        otel_bridge.wide_event.incr("lookups", 2)
    (record,) = RecordAssembler(Health()).add(exporter.get_finished_spans())
    assert (record.path, record.query, record.method) == ("/a", "b=1", "GET")
    assert dict(record.tags) == {"shard": "3", "premium": "1"}
    assert dict(record.fields) == {"cart": 2, "lookups": 3}
    assert not any(key.startswith("otel_bridge.") for key in record.attributes)
    monkeypatch.setattr(mode, "zerocode", False)
    exporter.clear()
    with tracer.start_as_current_span("GET", kind=SpanKind.SERVER):
        otel_bridge.tag(shard=3)
    (span,) = exporter.get_finished_spans()
    assert "otel_bridge.tag.shard" not in (span.attributes or {}), "only in zero-code mode"


def test_the_zero_code_listener_bounds_slow_clients() -> None:
    """Its own HTTP listener: at most 32 connections at once (more are closed at once), a
    silent client dropped after the timeout, and a normal scrape served meanwhile."""
    import select
    import socket
    import time

    from otel_bridge.exporters.expvar._listen import listen as _listen
    from otel_bridge.exporters.expvar._view import ExpvarEndpoint

    # A 2 s timeout: the listener has time to take all 40 on a loaded machine before it.
    server = _listen(ExpvarEndpoint(), "127.0.0.1", 0, timeout=2.0)
    port = server.server_address[1]
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    try:
        deadline = time.monotonic() + 1.5
        readable: list[socket.socket] = []
        while len(readable) < 8 and time.monotonic() < deadline:
            readable = select.select(silent, [], [], 0.05)[0]
        assert [sock.recv(1) for sock in readable] == [b""] * 8, "past the 32nd: closed at once"
        time.sleep(2.2)
        for sock in silent[:32]:
            sock.settimeout(2)
            assert sock.recv(1) in (b"", b"H"), "a silent client is dropped after the timeout"
        with socket.create_connection(("127.0.0.1", port), timeout=5) as scrape:
            scrape.sendall(b"GET /debug/vars HTTP/1.0\r\n\r\n")
            assert scrape.recv(12) == b"HTTP/1.0 200"
        # A client that trickles a byte every 0.4 s (under the 2 s silence timeout) is cut
        # at the listener's 2 s deadline all the same.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as trickle:
            started = time.monotonic()
            cut = False
            for byte in b"GET /debug/vars HTTP/1.0\r\nX-Slow: " + b"x" * 20:
                try:
                    trickle.sendall(bytes([byte]))
                except OSError:
                    cut = True
                    break
                readable, _, _ = select.select([trickle], [], [], 0.4)
                if readable and trickle.recv(1) == b"":
                    cut = True
                    break
            assert cut and time.monotonic() - started < 5, "cut at the deadline"
    finally:
        for sock in silent:
            sock.close()
        server.shutdown()
        server.server_close()
