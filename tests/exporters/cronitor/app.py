"""The app of the startup-sync test, served by gunicorn with three uvicorn workers."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge


@otel_bridge.healthcheck
async def health(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = otel_bridge.instrument(Starlette(routes=[Route("/health", health, name="health")]))
