"""`instrument()` and `instrument_wsgi()` refuse, at startup, an app of the other interface:
wrapped the wrong way it would fail every request with a TypeError deep in the server."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from flask import Flask
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette

import otel_bridge


def wrapped_by(wrap: Any, app: Any) -> Any:
    """`app` wrapped by `wrap` with providers of its own, its bridge shut down."""
    wrapped = wrap(
        app, exporters="none", tracer_provider=TracerProvider(), meter_provider=MeterProvider()
    )
    wrapped.bridge.shutdown()
    return wrapped


def plain_wsgi(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    pass


def routed(prefix: str, environ: Any, start_response: Any) -> list[bytes]:
    return plain_wsgi(environ, start_response)


WSGI_APPS: dict[str, Any] = {
    "function": plain_wsgi,
    "partial": functools.partial(routed, "/api"),
    "Flask": Flask("shop"),
}
ASGI_APPS: dict[str, Any] = {
    "function": plain_asgi,
    "Starlette": Starlette(),
}


@pytest.mark.parametrize("name", list(WSGI_APPS))
def test_instrument_refuses_a_wsgi_app_naming_instrument_wsgi(name: str) -> None:
    app = WSGI_APPS[name]
    with pytest.raises(TypeError, match=r"\(environ, start_response\).*instrument_wsgi\(\)"):
        otel_bridge.instrument(app, exporters="none")
    # The right call takes it.
    assert wrapped_by(otel_bridge.instrument_wsgi, app).app is app


@pytest.mark.parametrize("name", list(ASGI_APPS))
def test_instrument_wsgi_refuses_an_asgi_app_naming_instrument(name: str) -> None:
    app = ASGI_APPS[name]
    with pytest.raises(TypeError, match=r"\(scope, receive, send\).*instrument\(\)"):
        otel_bridge.instrument_wsgi(app, exporters="none")
    assert wrapped_by(otel_bridge.instrument, app).app is app


def test_shapes_that_cannot_be_told_pass() -> None:
    def anything(*args: Any) -> Any:
        return None

    for wrap in (otel_bridge.instrument, otel_bridge.instrument_wsgi):
        assert wrapped_by(wrap, anything).app is anything
