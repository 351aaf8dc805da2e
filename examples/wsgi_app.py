"""A plain WSGI callable: `gunicorn examples.wsgi_app:app` (from the repository root)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import otel_bridge


def hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    name = environ.get("PATH_INFO", "/").rsplit("/", 1)[-1]
    body = f"hello {name}".encode()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]


app = otel_bridge.instrument_wsgi(hello)
