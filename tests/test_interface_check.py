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

WSGI_SAID = r"\(environ, start_response\).*instrument_wsgi\(\)"
ASGI_SAID = r"\(scope, receive, send\).*instrument\(\)"


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


# (name, app, the call that refuses it, what the refusal must say, the call that takes it)
CASES: list[tuple[str, Any, Any, str, Any]] = [
    (f"WSGI {name}", app, otel_bridge.instrument, WSGI_SAID, otel_bridge.instrument_wsgi)
    for name, app in (
        ("function", plain_wsgi),
        ("partial", functools.partial(routed, "/api")),
        ("Flask", Flask("shop")),
    )
] + [
    (f"ASGI {name}", app, otel_bridge.instrument_wsgi, ASGI_SAID, otel_bridge.instrument)
    for name, app in (("function", plain_asgi), ("Starlette", Starlette()))
]


@pytest.mark.parametrize(
    ("name", "app", "wrong", "said", "right"), CASES, ids=[c[0] for c in CASES]
)
def test_an_app_of_the_other_interface_is_refused_naming_the_right_call(
    name: str, app: Any, wrong: Any, said: str, right: Any
) -> None:
    with pytest.raises(TypeError, match=said):
        wrong(app, exporters="none")
    assert wrapped_by(right, app).app is app


def test_shapes_that_cannot_be_told_pass() -> None:
    def anything(*args: Any) -> Any:
        return None

    for wrap in (otel_bridge.instrument, otel_bridge.instrument_wsgi):
        assert wrapped_by(wrap, anything).app is anything
