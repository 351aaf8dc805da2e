"""Bad input, generated: ASGI scopes and WSGI environs with any method, paths of invalid UTF-8
and stray `%`, header names and values of every byte, missing keys and huge headers. The app
answers exactly as it does unwrapped, and every view built from the record stays valid: the
Pinba packet decodes with the reference decoder, the wide event is JSON in UTF-8, and
`/debug/vars` still parses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_bridge.exporters.expvar._view import ExpvarEndpoint
from otel_bridge.exporters.pinba import PinbaExporter
from otel_bridge.exporters.wide_events._event import EventBuilder
from otel_bridge.record import RequestRecord
from tests.conftest import make_harness
from tests.exporters.pinba.reference import request_class

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

any_bytes = st.binary(max_size=64)
methods = st.one_of(
    st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "QUERY"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12),
)
header = st.tuples(st.binary(min_size=1, max_size=24), any_bytes)
huge = st.tuples(st.just(b"x-huge"), st.binary(min_size=8_000, max_size=70_000))
headers = st.lists(st.one_of(header, header, header, huge), max_size=12)


def echo_body(method: str, path: str, query: bytes, count: int) -> bytes:
    return f"{method} {path!r} {query!r} {count}".encode("utf-8", "surrogatepass")


async def bare_asgi(scope: Any, receive: Any, send: Any) -> None:
    body = echo_body(
        scope.get("method", "?"),
        scope.get("path", ""),
        scope.get("query_string", b""),
        len(scope.get("headers") or ()),
    )
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-echo", b"1")]})
    await send({"type": "http.response.body", "body": body})


def bare_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    keys = sorted(k for k in environ if k.startswith("HTTP_"))
    body = echo_body(
        environ.get("REQUEST_METHOD", "?"),
        environ.get("PATH_INFO", ""),
        environ.get("QUERY_STRING", "").encode("latin-1"),
        len(keys),
    )
    start_response("200 OK", [("x-echo", "1")])
    return [body]


def views_stay_valid(record: RequestRecord) -> None:
    packet = PinbaExporter([("127.0.0.1", 9)]).packet(record)
    assert packet is not None
    decoded = request_class().FromString(packet)  # the reference decoder; strings are UTF-8
    assert decoded.IsInitialized() and decoded.script_name
    event = EventBuilder().build(record)
    text = json.dumps(event, ensure_ascii=False)
    assert json.loads(text.encode("utf-8").decode("utf-8")) == json.loads(text)
    view = ExpvarEndpoint()
    view.stats.export([record])
    json.loads(view.render())


asgi_scopes = st.fixed_dictionaries(
    {
        "type": st.just("http"),
        "method": methods,
        "path": st.text(max_size=80),
        "raw_path": any_bytes,
        "query_string": any_bytes,
        "headers": headers,
    },
    optional={
        "asgi": st.just({"version": "3.0"}),
        "http_version": st.sampled_from(["1.0", "1.1", "2"]),
        "scheme": st.sampled_from(["http", "https"]),
        "root_path": st.sampled_from(["", "/api", "/%ff"]),
        "client": st.one_of(st.none(), st.tuples(st.just("10.0.0.1"), st.integers(0, 65535))),
        "server": st.one_of(st.none(), st.tuples(st.text(max_size=20), st.integers(0, 65535))),
    },
)


def test_asgi_scopes_of_any_shape_pass_through_and_keep_the_views_valid() -> None:
    harness = make_harness()
    wrapped = harness.asgi(bare_asgi)

    async def run(app: Any, scope: dict[str, Any]) -> list[Any]:
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(dict(scope), receive, send)
        return sent

    @FUZZ
    @given(scope=asgi_scopes)
    def check(scope: dict[str, Any]) -> None:
        harness.collector.clear()
        assert asyncio.run(run(wrapped, scope)) == asyncio.run(run(bare_asgi, scope))
        (record,) = harness.records()
        views_stay_valid(record)

    try:
        check()
    finally:
        wrapped.bridge.shutdown()


latin1 = st.text(st.characters(max_codepoint=255), max_size=80)
environs = st.fixed_dictionaries(
    {
        "REQUEST_METHOD": methods,
        "PATH_INFO": latin1,
        "wsgi.url_scheme": st.sampled_from(["http", "https"]),
    },
    optional={
        "QUERY_STRING": latin1,
        "SCRIPT_NAME": st.sampled_from(["", "/app", "/\xff"]),
        "SERVER_NAME": latin1,
        "SERVER_PORT": st.sampled_from(["80", "8000", "", "http"]),
        "SERVER_PROTOCOL": st.sampled_from(["HTTP/1.0", "HTTP/1.1", "", "SPDY"]),
        "REMOTE_ADDR": st.sampled_from(["10.0.0.1", "::1", ""]),
        "REMOTE_PORT": st.sampled_from(["5000", "x", ""]),
        "HTTP_HOST": latin1,
        "HTTP_USER_AGENT": latin1,
        "HTTP_X_REQUEST_ID": latin1,
        "HTTP_TRACEPARENT": latin1,
        "HTTP_X_HUGE": st.text(st.characters(max_codepoint=255), min_size=8_000, max_size=70_000),
    },
)


def test_wsgi_environs_of_any_shape_pass_through_and_keep_the_views_valid() -> None:
    harness = make_harness()
    wrapped = harness.wsgi(bare_wsgi)

    def run(app: Any, environ: dict[str, Any]) -> tuple[list[Any], bytes]:
        started: list[Any] = []

        def start_response(status: str, response_headers: Any, exc_info: Any = None) -> Any:
            started.append((status, response_headers))
            return lambda data: None

        iterable = app(dict(environ), start_response)
        try:
            body = b"".join(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
        return started, body

    @FUZZ
    @given(environ=environs)
    def check(environ: dict[str, Any]) -> None:
        harness.collector.clear()
        assert run(wrapped, environ) == run(bare_wsgi, environ)
        (record,) = harness.records()
        views_stay_valid(record)

    try:
        check()
    finally:
        wrapped.bridge.shutdown()
