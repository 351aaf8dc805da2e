"""A FastAPI service shaped as teams build them, instrumented as the README says:
`uvicorn examples.shop.app:app` (from the repository root).

Routers with prefixes (one nested), a dependency that answers 401, an exception handler, a
mounted sub-application, StaticFiles, streaming, a background task and a WebSocket. The suite
serves it with real servers and reads every view (tests/integration/test_hostile_labels.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.websockets import WebSocket

import otel_bridge

STATIC = Path(__file__).parent / "static"


class OutOfStock(Exception):
    def __init__(self, sku: str) -> None:
        self.sku = sku


def account(authorization: str | None = Header(default=None)) -> str:
    """The signed-in account: a bearer token, else 401."""
    if authorization is None or not authorization.startswith("Bearer "):
        raise HTTPException(status_code=401, detail="sign in")
    return authorization.removeprefix("Bearer ")


users = APIRouter(prefix="/users", tags=["users"])


@users.get("/{uid}")
async def user(uid: int) -> dict[str, int]:
    with otel_bridge.timer(group="db", op="select"):
        return {"uid": uid}


orders = APIRouter(prefix="/orders", dependencies=[Depends(account)])


@orders.get("/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    return {"order": order_id}


@orders.post("/{sku}")
async def buy(sku: str, tasks: BackgroundTasks) -> dict[str, str]:
    if sku.startswith("sold-out"):
        raise OutOfStock(sku)
    tasks.add_task(lambda: None)
    return {"bought": sku}


v1 = APIRouter(prefix="/api/v1")
v1.include_router(users)
v1.include_router(orders)


@v1.get("/export")
async def export() -> StreamingResponse:
    async def rows() -> AsyncIterator[bytes]:
        for index in range(3):
            yield f"{index}\n".encode()

    return StreamingResponse(rows(), media_type="text/csv")


@v1.get("/feed")
async def feed() -> StreamingResponse:
    """A long stream (server-sent events): clients often leave before its end."""

    async def events() -> AsyncIterator[bytes]:
        for index in range(100):
            yield f"data: {index}\n\n".encode()
            await asyncio.sleep(0.05)

    return StreamingResponse(events(), media_type="text/event-stream")


@otel_bridge.healthcheck(schedule="every 5 minutes")
async def health() -> dict[str, str]:
    return {"status": "ok"}


admin = FastAPI()


@admin.get("/stats")
async def stats() -> dict[str, int]:
    return {"orders": 0}


shop = FastAPI(title="shop")
shop.include_router(v1)
shop.add_api_route("/health", health)
shop.mount("/admin", admin)
shop.mount("/static", StaticFiles(directory=STATIC), name="static")


@shop.exception_handler(OutOfStock)
async def out_of_stock(request: Request, exc: OutOfStock) -> JSONResponse:
    return JSONResponse({"out_of_stock": exc.sku}, status_code=409)


@shop.websocket("/ws/orders")
async def order_feed(websocket: WebSocket) -> None:
    if "token" not in websocket.query_params:
        await websocket.close(code=1008)  # policy violation: refused before the handshake ends
        return
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"ack {text}")


app = otel_bridge.instrument(shop)
