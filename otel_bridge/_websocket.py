"""A WebSocket connection as one record, its span the handshake's as the HTTP conventions have
it: ``GET /ws/orders``, status 101 once accepted (403 when the app closed it first, or the
status of the app's own denial response), ended when the connection closed.

The record's interface is ``websocket``: every view shows it under its route (expvar's
counts, a Pinba packet, one wide event), with ``websocket.close_code`` and
``websocket.messages_received`` / ``websocket.messages_sent`` in the event. A connection's
length is no request latency: it is left out of ``http.server.request.duration`` and of
``http.server.active_requests``, and no timeout deadline applies to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_bridge import clock
from otel_bridge.types import Message, Receive, Scope, Send

__all__ = ["WEBSOCKET", "record_websocket"]

WEBSOCKET = "websocket"
ACCEPTED = 101
REFUSED = 403  # what ASGI servers answer when the app closes before accepting


async def record_websocket(
    middleware: Any,
    scope: Scope,
    receive: Receive,
    send: Send,
    route_of: Callable[[Scope, str], str | None],
) -> None:
    """Serve one WebSocket connection through `middleware`'s app (otel_bridge.asgi's, whose
    `route_of` reads the route from the scope), recording it."""
    bridge = middleware.bridge
    path = scope.get("path") or ""
    builder = None
    try:
        excluded = bridge.excluded
        if excluded is None or not excluded.search(path):
            builder = middleware._begin(scope, path, WEBSOCKET)
    except Exception as exc:  # noqa: BLE001 - recording must never stop the connection
        bridge.health.error("asgi.websocket", exc)
    if builder is None:
        await middleware.app(scope, receive, send)
        return
    counts = [0, 0, 1005]  # messages received, sent; close code (1005: none given)

    async def receive_wrapper() -> Message:
        message = await receive()
        kind = message.get("type")
        if kind == "websocket.receive":
            counts[0] += 1
        elif kind == "websocket.disconnect":
            counts[2] = message.get("code", 1005)
            _closed(builder)
        return message

    async def send_wrapper(message: Message) -> None:
        kind = message.get("type")
        await send(message)
        try:
            _sent(message, kind)
        except Exception as exc:  # noqa: BLE001 - counting must never fail the app's send
            bridge.health.error("asgi.websocket", exc)

    def _sent(message: Message, kind: Any) -> None:
        if kind == "websocket.send":
            counts[1] += 1
            data = message.get("bytes")
            if data is None:
                text = message.get("text")
                data = text.encode("utf-8", "replace") if text is not None else b""
            builder.response_bytes += len(data)
        elif kind == "websocket.accept":
            builder.status = ACCEPTED
        elif kind == "websocket.close":
            if builder.status == 0:
                builder.status = REFUSED
            counts[2] = message.get("code", 1000)
            _closed(builder)
        elif kind == "websocket.http.response.start":
            builder.status = message.get("status", 0)
        elif kind == "websocket.http.response.body" and not message.get("more_body", False):
            _closed(builder)

    try:
        await middleware.app(scope, receive_wrapper, send_wrapper)
    except BaseException as exc:
        builder.exception = exc
        raise
    finally:
        try:
            if builder.route is None:
                builder.route = route_of(scope, builder.root_path)
            if builder.exception is None and builder.status:
                _closed(builder)  # the app returned: the server closes the connection
            fields = builder.fields
            if fields is None:
                fields = builder.fields = {}
            fields[".websocket.messages_received"] = counts[0]
            fields[".websocket.messages_sent"] = counts[1]
            if builder.status == ACCEPTED:
                fields[".websocket.close_code"] = counts[2]
        except Exception as exc:  # noqa: BLE001
            bridge.health.error("asgi.websocket", exc)
        bridge.finish(builder)


def _closed(builder: Any) -> None:
    if not builder.completed:
        builder.complete_ns = clock.monotonic_ns()
        builder.completed = True
