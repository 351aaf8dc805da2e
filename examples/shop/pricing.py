"""A second local service the shop calls (`uvicorn examples.shop.pricing:app`): prices."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def price(request: Request) -> JSONResponse:
    sku = request.path_params["sku"]
    return JSONResponse({"sku": sku, "cents": 100 * len(sku)})


app = Starlette(routes=[Route("/prices/{sku}", price)])
