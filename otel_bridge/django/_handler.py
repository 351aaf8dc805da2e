"""What OtelBridgeMiddleware does behind a wrapper, done by the wrapper itself: `instrument()`
and `instrument_wsgi()` hook Django's own handler, so no MIDDLEWARE entry is needed.

Two instance attributes of the handler are replaced (its class is untouched): `resolve_request`
(the URL pattern and view become the request's, and under ASGI where the view runs, for a
timeout's stack) and `get_response` / `get_response_async` (the signed-in user, once the
response exists).
"""

from __future__ import annotations

from typing import Any

from otel_bridge.django._routes import after_response, follow_view, record_match

__all__ = ["hook"]


def hook(handler: Any) -> None:
    if getattr(handler, "_otel_bridge_hooked", False):
        return
    resolve = handler.resolve_request
    get_response = handler.get_response
    get_response_async = handler.get_response_async

    def resolve_request(request: Any) -> Any:
        resolved = resolve(request)
        match = getattr(request, "resolver_match", None)
        record_match(match)
        if match is not None:
            view = follow_view(match)
            if view is not None:
                # What the handler unpacks (callback, args, kwargs): the view's wrapper runs,
                # request.resolver_match stays Django's own.
                return (view, match.args, match.kwargs)
        return resolved

    def sync_response(request: Any) -> Any:
        response = get_response(request)
        after_response(request)
        return response

    async def async_response(request: Any) -> Any:
        response = await get_response_async(request)
        after_response(request)
        return response

    handler.resolve_request = resolve_request
    handler.get_response = sync_response
    handler.get_response_async = async_response
    handler._otel_bridge_hooked = True
