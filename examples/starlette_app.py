"""Starlette: `uvicorn examples.starlette_app:app` (from the repository root)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge


async def hello(request: Request) -> PlainTextResponse:
    otel_bridge.wide_event.set(greeted=request.path_params["name"])
    return PlainTextResponse(f"hello {request.path_params['name']}")


app = otel_bridge.instrument(Starlette(routes=[Route("/hello/{name}", hello)]))
