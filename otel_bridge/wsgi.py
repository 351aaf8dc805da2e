"""The WSGI wrapper: one server span and one record per request, finished after the last chunk.

The response is complete when the server has taken the last chunk (the iterable is exhausted)
or closed the iterable early (a client that went away); the span, the duration metric and the
record all end then — not when the app callable returns, which for a streaming body is before
any byte was sent. The request's context (span, timers) stays current while the server
iterates the body, so spans opened by a generator body belong to the request.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Iterator

from otel_bridge import clock
from otel_bridge._http import WSGIHeaders, split_host
from otel_bridge.bridge import Bridge, RequestBuilder
from otel_bridge.types import Environ, ExcInfo, Headers, StartResponse, WSGIApp

__all__ = ["OtelBridgeWSGIMiddleware", "begin_environ", "propagation_keys"]


class OtelBridgeWSGIMiddleware:
    """Wraps a WSGI (PEP 3333) application.

    Args:
        app: the application.
        bridge: the `Bridge` that records requests (built by `otel_bridge.instrument_wsgi()`).

    Application exceptions are recorded and re-raised unchanged; otel_bridge's own failures are
    counted and never raised.
    """

    def __init__(self, app: WSGIApp, *, bridge: Bridge) -> None:
        self.app = app
        self.bind(bridge)

    def bind(self, bridge: Bridge) -> None:
        """Record with `bridge` from the next request on (Django's `override_settings`)."""
        self._fields = propagation_keys(bridge)
        self.bridge = bridge

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        bridge = self.bridge
        try:
            path = _path(environ)
            expvar = bridge.expvar
            if expvar is not None and (path == expvar.path or path == expvar.ui_path):
                from otel_bridge.exporters.expvar._serve import serve_wsgi

                if not bridge.bound:
                    bridge.bind()  # /debug/vars shows what a request gets
                return serve_wsgi(expvar, environ, start_response)
            excluded = bridge.excluded
            if excluded is not None and excluded.search(path):
                return self.app(environ, start_response)
            builder = begin_environ(bridge, environ, path, self._fields)
        except Exception as exc:  # noqa: BLE001 - recording must never stop the request
            bridge.health.error("wsgi.begin", exc)
            return self.app(environ, start_response)

        def start_response_wrapper(
            status: str, headers: Headers, exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], object]:
            try:
                builder.status = int(status[:3])
            except ValueError:
                builder.status = 0
            write = (
                start_response(status, headers, exc_info)
                if exc_info is not None
                else start_response(status, headers)
            )

            def counting_write(data: bytes) -> object:
                builder.response_bytes += len(data)
                return write(data)

            return counting_write

        try:
            iterable = self.app(environ, start_response_wrapper)
        except BaseException as exc:
            builder.exception = exc
            bridge.finish(builder)
            raise
        if type(iterable) is list or type(iterable) is tuple:
            # The whole body handed over at once (the common case): the response is complete
            # and no application code is left to run, not even a close().
            builder.response_bytes += sum(map(len, iterable))
            builder.complete_ns = clock.monotonic_ns()
            builder.completed = True
            bridge.finish(builder)
            return iterable
        # A streaming body runs application code while the server iterates it: keep the
        # request's context (span, timers) for that, in a private copy, and leave the
        # server's thread clean meanwhile.
        context = contextvars.copy_context()
        bridge.detach(builder)
        return _ResponseBody(iterable, builder, context)


class _ResponseBody:
    """The app's iterable, counted and finished when the server is done with it."""

    __slots__ = ("_builder", "_context", "_finished", "_iterable", "_iterator", "_plain")

    def __init__(
        self, iterable: Iterable[bytes], builder: RequestBuilder, context: contextvars.Context
    ) -> None:
        self._iterable = iterable
        self._builder = builder
        self._context = context
        self._iterator: Iterator[bytes] | None = None
        self._finished = False
        # A list subclass, say: iterating it runs no application code either.
        self._plain = isinstance(iterable, (list, tuple))

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        builder = self._builder
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        try:
            iterator = self._iterator
            chunk = next(iterator) if self._plain else self._context.run(next, iterator)
        except StopIteration:
            if not builder.complete_ns:
                builder.complete_ns = clock.monotonic_ns()
                builder.completed = True
            raise
        except BaseException as exc:
            builder.exception = exc
            raise
        builder.response_bytes += len(chunk)
        return chunk

    def close(self) -> None:
        if self._finished:
            return
        self._finished = True
        builder = self._builder
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                self._context.run(close)
        except BaseException as exc:
            if builder.exception is None:
                builder.exception = exc
            raise
        finally:
            self._context.run(builder.bridge.finish, builder, False)


def propagation_keys(bridge: Bridge) -> tuple[tuple[str, str], ...]:
    """(header, environ key) of each field the propagator reads: ``traceparent`` → …"""
    return tuple(
        (name, "HTTP_" + name.upper().replace("-", "_")) for name in bridge.propagation_fields
    )


def begin_environ(
    bridge: Bridge,
    environ: Environ,
    path: str,
    fields: tuple[tuple[str, str], ...],
    interface: str = "wsgi",
    scheme: str | None = None,
) -> RequestBuilder:
    """Start recording the request `environ` describes (a WSGI environ, or Django's META)."""
    builder = RequestBuilder(bridge, interface)
    builder.path = path
    builder.query = _recode(environ.get("QUERY_STRING", ""))
    builder.scheme = scheme or environ.get("wsgi.url_scheme") or "http"
    protocol = environ.get("SERVER_PROTOCOL") or "HTTP/1.1"
    builder.protocol_version = protocol[5:] if protocol.startswith("HTTP/") else protocol
    host = environ.get("HTTP_HOST")
    if host:
        builder.server = split_host(host)
    elif environ.get("SERVER_NAME"):
        port = environ.get("SERVER_PORT")
        builder.server = (
            environ["SERVER_NAME"],
            int(port) if port and port.isdigit() else None,
        )
    builder.user_agent = environ.get("HTTP_USER_AGENT")
    remote = environ.get("REMOTE_ADDR")
    if remote:
        port_text = environ.get("REMOTE_PORT")
        builder.client = (
            remote,
            int(port_text) if port_text and str(port_text).isdigit() else None,
        )
    carrier: dict[str, str] | None = None
    for name, key in fields:
        value = environ.get(key)
        if value is not None:
            if carrier is None:
                carrier = {}
            carrier[name] = value
    builder.headers = WSGIHeaders(environ)
    bridge.begin(builder, environ.get("REQUEST_METHOD") or "GET", carrier)
    return builder


def _recode(text: str) -> str:
    # PEP 3333: environ strings are bytes decoded as latin-1; the bytes are usually UTF-8.
    if text.isascii():
        return text
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


def _path(environ: Environ) -> str:
    return _recode(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
