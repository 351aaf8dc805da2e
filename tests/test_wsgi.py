from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import otel_bridge

from .conftest import FailingExporter, Harness


def client(app: Any) -> httpx.Client:
    transport = httpx.WSGITransport(app, remote_addr="10.1.2.3")
    return httpx.Client(transport=transport, base_url="http://example.com:8080")


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    with otel_bridge.timer(group="db", op="select"):
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello ", environ["PATH_INFO"].encode("latin-1")]


def test_request_becomes_one_server_span_and_one_record(harness: Harness) -> None:
    app = harness.wsgi(hello)
    with client(app) as c:
        response = c.get("/users/42?q=1", headers={"user-agent": "probe/1"})
    assert response.text == "hello /users/42"
    [record] = harness.records()
    assert record.interface == "wsgi"
    assert (record.method, record.route, record.path, record.query) == (
        "GET",
        None,
        "/users/42",
        "q=1",
    )
    assert (record.status, record.response_bytes, record.completed) == (200, 15, True)
    assert (record.server_address, record.server_port) == ("example.com", 8080)
    assert record.client_address == "10.1.2.3"
    assert record.headers["user-agent"] == "probe/1"
    assert [dict(t.tags) for t in record.timers] == [{"group": "db", "op": "select"}]
    [server] = [s for s in harness.finished_spans() if s.kind is SpanKind.SERVER]
    assert server.name == "GET"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/users/42"


def test_streaming_body_is_timed_to_the_last_chunk_with_its_spans(harness: Harness) -> None:
    closed: list[bool] = []

    def streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])

        def body() -> Iterator[bytes]:
            try:
                for index in range(3):
                    with otel_bridge.timer(chunk=index):
                        time.sleep(0.02)
                    yield b"chunk"
            finally:
                closed.append(True)

        return body()

    app = harness.wsgi(streaming)
    with client(app) as c:
        assert c.get("/s").content == b"chunk" * 3
    [record] = harness.records()
    assert closed == [True]
    assert record.duration_ns >= 60_000_000, "the span ends after the last chunk, not at return"
    assert [dict(t.tags) for t in record.timers] == [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}]
    assert record.response_bytes == 15
    [point] = harness.metric_points("http.server.request.duration")
    assert point.sum * 1e9 == pytest.approx(record.duration_ns, rel=1e-6)


def test_app_exception_is_recorded_and_reraised_unchanged(harness: Harness) -> None:
    error = ValueError("bad")

    def failing(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise error

    app = harness.wsgi(failing)
    with pytest.raises(ValueError) as caught:
        app({"REQUEST_METHOD": "POST", "PATH_INFO": "/x", "wsgi.url_scheme": "http"}, None)
    assert caught.value is error
    [record] = harness.records()
    assert (record.status, record.error_type, record.exception) == (500, "ValueError", error)
    [span] = harness.finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_exception_while_iterating_is_recorded(harness: Harness) -> None:
    def broken(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise RuntimeError("mid-stream")

    app = harness.wsgi(broken)
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda s, h, e=None: None)
    chunks = iter(body)
    assert next(chunks) == b"first"
    with pytest.raises(RuntimeError, match="mid-stream"):
        next(chunks)
    body.close()
    [record] = harness.records()
    assert (record.status, record.error_type, record.completed) == (200, "RuntimeError", False)


def test_client_that_stops_reading_closes_early_and_is_recorded(harness: Harness) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield from (b"a", b"b", b"c")

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        start_response("206 Partial Content", [])
        return Body()

    wrapped = harness.wsgi(app)
    body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda s, h, e=None: None)
    assert next(iter(body)) == b"a"
    body.close()
    body.close()  # a second close is harmless
    assert closed == [True]
    [record] = harness.records()
    assert (record.status, record.response_bytes, record.completed) == (206, 1, False)


def test_write_callable_bytes_are_counted(harness: Harness) -> None:
    def legacy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        write(b"12345")
        return [b"678"]

    app = harness.wsgi(legacy)
    written: list[bytes] = []
    body = app({"REQUEST_METHOD": "GET"}, lambda status, headers, exc_info=None: written.append)
    written.extend(body)
    getattr(body, "close", lambda: None)()  # as servers do
    assert b"".join(written) == b"12345678"
    [record] = harness.records()
    assert record.response_bytes == 8


def test_wrapper_is_pep3333_compliant_and_passes_non_utf8_paths(harness: Harness) -> None:
    seen: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    wrapped: Any = validator(harness.wsgi(validator(app)))
    environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/caf\xe9/\xff",  # latin-1-decoded bytes, as PEP 3333 says
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.0",
        "HTTP_X_HUGE": "v" * 100_000,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": __import__("io").BytesIO(),
        "wsgi.errors": __import__("io").StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    body = wrapped(environ, lambda status, headers, exc_info=None: None)
    assert b"".join(body) == b"ok"
    body.close()
    assert seen == ["/caf\xe9/\xff"], "the app sees the environ unchanged"
    [record] = harness.records()
    assert record.path == "/caf\ufffd/\ufffd"
    assert record.protocol_version == "1.0"
    assert (record.server_address, record.server_port) == ("localhost", 80)
    assert len(record.headers["x-huge"]) == 100_000


def test_start_response_with_exc_info_is_forwarded(harness: Harness) -> None:
    calls: list[Any] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            raise KeyError("x")
        except KeyError:
            import sys

            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"err"]

    wrapped = harness.wsgi(app)
    body = wrapped({"REQUEST_METHOD": "GET"}, lambda *args: calls.append(args))
    list(body)
    getattr(body, "close", lambda: None)()  # as servers do
    assert calls[0][2][0] is KeyError
    [record] = harness.records()
    assert (record.status, record.error_type) == (500, "500")


def test_a_failing_exporter_never_reaches_the_app(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingExporter(lambda: OSError(28, "No space left on device"))
    app = harness.wsgi(hello, record_exporters=[failing, harness.collector])
    with caplog.at_level(logging.WARNING, logger="otel_bridge"), client(app) as c:
        for _ in range(10):
            assert c.get("/").status_code == 200
        assert len(harness.records()) == 10
    assert app.bridge.health.errors["exporter.failing"] >= 1
    assert sum("exporter.failing" in r.getMessage() for r in caplog.records) == 1


def test_excluded_urls_pass_through(harness: Harness) -> None:
    app = harness.wsgi(hello, excluded_urls=["/health"])
    with client(app) as c:
        assert c.get("/healthz").text == "hello /healthz"
        c.get("/other")
    assert [r.path for r in harness.records()] == ["/other"]


def test_context_does_not_leak_into_the_server_thread(harness: Harness) -> None:
    from opentelemetry import trace

    from otel_bridge.bridge import current_builder

    app = harness.wsgi(hello)
    with client(app) as c:
        c.get("/")
    assert current_builder() is None
    assert not trace.get_current_span().get_span_context().is_valid


def test_a_list_body_is_complete_when_handed_over_and_leaves_no_context(
    harness: Harness,
) -> None:
    from opentelemetry import trace

    from otel_bridge.bridge import current_builder

    app = harness.wsgi(hello)
    body = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *args: None)
    assert type(body) is list, "a list body is returned as it is: nothing wraps it"
    assert current_builder() is None
    assert not trace.get_current_span().get_span_context().is_valid
    [record] = harness.records()
    assert (record.completed, record.response_bytes) == (True, len(b"hello /x"))


def test_one_clock_times_every_request_and_can_be_replaced() -> None:
    """`otel_bridge.clock` is the only clock of a request: with it replaced, the record's
    start, durations and the server span's times are exactly the replacement's."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_bridge import clock
    from otel_bridge.testing import RecordCollector

    def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hi"]

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    collector = RecordCollector()
    app: Any = otel_bridge.instrument_wsgi(
        hello, exporters="none", record_exporters=[collector], tracer_provider=provider
    )
    monotonic = iter([10_000_000, 12_500_000, 13_000_000, 14_000_000])
    wall = iter([1_700_000_000_000_000_000])
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/hi", "wsgi.url_scheme": "http"}
    with clock.use(monotonic=monotonic.__next__, wall=wall.__next__):
        body = b"".join(app(environ, lambda status, headers, exc_info=None: None))
        app.bridge.force_flush()
    app.bridge.shutdown()
    (record,) = collector.records
    (span,) = spans.get_finished_spans()
    assert body == b"hi"
    assert record.start_time_ns == 1_700_000_000_000_000_000
    assert (record.duration_ns, record.app_duration_ns) == (2_500_000, 3_000_000)
    assert (span.start_time, span.end_time) == (
        1_700_000_000_000_000_000,
        1_700_000_000_002_500_000,
    )
