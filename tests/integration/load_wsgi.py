"""The WSGI app tests/integration/test_faults.py loads under gunicorn with 2 workers."""

from __future__ import annotations

from typing import Any

import otel_bridge


def _wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    otel_bridge.tag(kind="item")
    with otel_bridge.timer(group="db", op="select"):
        pass
    body = b"item " + environ.get("PATH_INFO", "").rsplit("/", 1)[-1].encode()
    start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
    return [body]


wsgi_app = otel_bridge.instrument_wsgi(_wsgi)
