"""Serving the expvar view from the ASGI and WSGI wrappers (not recorded as requests)."""

from __future__ import annotations

from otel_bridge._http import ASGIHeaders, WSGIHeaders
from otel_bridge.exporters.expvar._view import ExpvarEndpoint
from otel_bridge.types import Environ, Scope, Send, StartResponse

__all__ = ["serve_asgi", "serve_wsgi"]

_REASONS = {200: "OK", 403: "Forbidden"}


async def serve_asgi(view: ExpvarEndpoint, scope: Scope, send: Send) -> None:
    client = scope.get("client")
    status, headers, body = view.respond(
        scope.get("method") or "GET",
        str(client[0]) if client else None,
        ASGIHeaders(scope.get("headers") or ()),
        scope.get("path"),
    )
    raw_headers = [(k.encode(), v.encode()) for k, v in headers]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    head = scope.get("method") == "HEAD"
    await send({"type": "http.response.body", "body": b"" if head else body})


def serve_wsgi(
    view: ExpvarEndpoint, environ: Environ, start_response: StartResponse
) -> list[bytes]:
    status, headers, body = view.respond(
        environ.get("REQUEST_METHOD") or "GET",
        environ.get("REMOTE_ADDR"),
        WSGIHeaders(environ),
        (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or ""),
    )
    start_response(
        f"{status} {_REASONS.get(status, '')}",
        [*headers, ("content-length", str(len(body)))],
    )
    return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]
