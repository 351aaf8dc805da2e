"""The ASGI wrapper: one server span and one record per HTTP request (and per WebSocket
connection: otel_bridge._websocket), everything else untouched.

Lifespan scopes (and any scope type this version does not know) pass straight through;
lifespan's shutdown additionally flushes the bridge, so no finished request is lost when the
server stops (also for an app that refuses lifespan, as Django's handler does). Per-request
state lives in a `RequestBuilder` local to the call, never on the wrapper instance.
"""

from __future__ import annotations

import asyncio

from otel_bridge import clock
from otel_bridge._http import ASGIHeaders, split_host
from otel_bridge._websocket import record_websocket
from otel_bridge.bridge import SHUTDOWN_TIMEOUT_MS, Bridge, RequestBuilder
from otel_bridge.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SHUTDOWN_TIMEOUT_MS", "OtelBridgeASGIMiddleware", "OtelBridgeMiddleware"]


class OtelBridgeASGIMiddleware:
    """Wraps an ASGI 3 application.

    Args:
        app: the application.
        bridge: the `Bridge` that records requests (built by `otel_bridge.instrument()`).

    Application exceptions are recorded (status 500 if no response had started, and
    ``error.type``) and re-raised unchanged; otel_bridge's own failures are counted and never
    raised.
    """

    def __init__(self, app: ASGIApp, *, bridge: Bridge) -> None:
        self.app = app
        self.bind(bridge)

    def bind(self, bridge: Bridge) -> None:
        """Record with `bridge` from the next request on (Django's `override_settings`)."""
        self._fields = {name.encode("latin-1") for name in bridge.propagation_fields}
        self.bridge = bridge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope.get("type")
        if scope_type != "http":
            if scope_type == "websocket":
                await record_websocket(self, scope, receive, send, _route)
            elif scope_type == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        bridge = self.bridge
        builder = None
        path = scope.get("path") or ""
        expvar = bridge.expvar
        if expvar is not None and (path == expvar.path or path == expvar.ui_path):
            from otel_bridge.exporters.expvar._serve import serve_asgi

            if not bridge.bound:
                bridge.bind()  # /debug/vars shows the providers and timers a request gets
            await serve_asgi(expvar, scope, send)
            return
        try:
            excluded = bridge.excluded
            if excluded is None or not excluded.search(path):
                builder = self._begin(scope, path)
        except Exception as exc:  # noqa: BLE001 - recording must never stop the request
            bridge.health.error("asgi.begin", exc)
            builder = None
        if builder is None:
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            # Status is what the app chose; bytes and completion count once the server took
            # the message (a send that raises — a client gone — delivered nothing).
            message_type = message.get("type")
            if message_type == "http.response.start":
                builder.status = message.get("status", 0)
                builder.trailers = bool(message.get("trailers", False))
                await send(message)
                return
            await send(message)
            if message_type == "http.response.body":
                builder.response_bytes += len(message.get("body", b""))
                if not message.get("more_body", False) and not builder.trailers:
                    builder.complete_ns = clock.monotonic_ns()
                    builder.completed = True
            elif message_type == "http.response.trailers":
                if not message.get("more_trailers", False):
                    builder.complete_ns = clock.monotonic_ns()
                    builder.completed = True
            elif message_type == "http.response.pathsend":
                builder.complete_ns = clock.monotonic_ns()
                builder.completed = True

        # FastAPI's built-in telemetry would add a second server span and the same HTTP
        # metrics again: it stands down for a request marked so, as behind contrib's middleware.
        scope.setdefault("fastapi.telemetry", None)
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            builder.exception = exc
            raise
        finally:
            try:
                if builder.route is None:
                    builder.route = _route(scope, builder.root_path)
            except Exception as exc:  # noqa: BLE001
                bridge.health.error("asgi.route", exc)
            bridge.finish(builder)

    def _begin(self, scope: Scope, path: str, interface: str = "asgi") -> RequestBuilder:
        bridge = self.bridge
        builder = RequestBuilder(bridge, interface)
        builder.path = path
        if bridge.wants_task:
            try:
                builder.task = asyncio.current_task()
            except RuntimeError:
                pass
            # A module function that reads the scope off the builder: a closure over
            # `builder` would be a reference cycle (every request would wait for the cyclic
            # GC to be freed), and a partial() one more object per request.
            builder.scope = scope
            builder.route_source = _route_of
        builder.root_path = scope.get("root_path", "")
        raw_query = scope.get("query_string", b"")
        if raw_query:
            builder.query = raw_query.decode("latin-1")
        builder.scheme = scope.get("scheme") or "http"
        builder.protocol_version = scope.get("http_version") or "1.1"
        headers = scope.get("headers") or ()
        fields = self._fields
        carrier: dict[str, str] | None = None
        host = None
        for name, value in headers:
            if name == b"host":
                host = value
            elif name == b"user-agent":
                builder.user_agent = value.decode("latin-1")
            elif name in fields:
                if carrier is None:
                    carrier = {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        if host is not None:
            builder.server = split_host(host.decode("latin-1"))
        else:
            server = scope.get("server")
            if server:
                builder.server = (str(server[0]), server[1])
        client = scope.get("client")
        if client:
            builder.client = (str(client[0]), client[1])
        builder.headers = ASGIHeaders(headers)
        bridge.begin(builder, scope.get("method") or "GET", carrier)
        return builder

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = False

        async def receive_wrapper() -> Message:
            nonlocal received
            received = True
            return await receive()

        try:
            await self.app(scope, receive_wrapper, self._lifespan_send(send))
        except ValueError:
            if received:
                raise  # the app's own startup or shutdown failed: the server decides
            # An app that does not speak lifespan refuses the scope before reading anything,
            # as Django's ASGI handler and asgiref's WSGI adapter do (ValueError): speak it
            # for the bridge, so the server's shutdown still flushes what finished. The app
            # sees nothing of it, as before. Any other failure is the server's to report.
            await self._own_lifespan(receive, self._lifespan_send(send))

    @staticmethod
    async def _own_lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _lifespan_send(self, send: Send) -> Send:
        bridge = self.bridge

        async def lifespan_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "lifespan.startup.complete" and not bridge.bound:
                # The app's startup may have set its OpenTelemetry providers up: find them
                # now rather than in the first request.
                bridge.bind()
            elif kind == "lifespan.shutdown.complete":
                # Bounded: a Collector that is down must not hold a restart for the SDK's
                # retries (~30 s); what is still unsent after this is given up.
                bridge.shutdown(SHUTDOWN_TIMEOUT_MS)
            await send(message)

        return lifespan_send


def _route_of(builder: RequestBuilder) -> str | None:
    """The route of a request still running (a timeout), from the scope it holds."""
    scope = builder.scope
    return _route(scope, builder.root_path) if scope is not None else None


def _route(scope: Scope, root_path: str) -> str | None:
    # Starlette (and FastAPI) put the matched route in the scope; Mount prefixes show up in
    # root_path, so a route inside a mounted router is prefix + its own template.
    route = scope.get("route")
    prefix = str(scope.get("root_path", ""))[len(root_path) :]
    if route is None:
        # FastAPI's router leaves no route for a Mount (StaticFiles, a plain ASGI app): the
        # mount's path is in root_path, its app the scope's endpoint, as under Starlette.
        if prefix and scope.get("endpoint") is not None:
            return prefix
        return None
    template = getattr(route, "path_format", None)
    # FastAPI keeps an included router's routes as they were declared and matches them
    # through the router's prefix: the route's template is then the effective one it records.
    fastapi = scope.get("fastapi")
    if type(fastapi) is dict:
        effective = fastapi.get("effective_route_context")
        if effective is not None and getattr(effective, "original_route", None) is route:
            full = getattr(effective, "path_format", None)
            if isinstance(full, str) and full:
                template = full
    if not isinstance(template, str):
        return None
    if getattr(route, "routes", None) is not None or type(route).__name__ == "Mount":
        # The final match is a Mount itself (e.g. StaticFiles): root_path already holds it.
        return prefix or template
    return prefix + template


# The name this class had before: otel_bridge.django.middleware.OtelBridgeMiddleware is the
# Django middleware, a different thing.
OtelBridgeMiddleware = OtelBridgeASGIMiddleware
