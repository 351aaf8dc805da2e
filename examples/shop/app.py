"""A FastAPI service shaped as teams build them, instrumented as the README says:
`uvicorn examples.shop.app:app` (from the repository root).

Routers with prefixes (one nested), a dependency that answers 401, an exception handler, a
mounted sub-application, StaticFiles, streaming, a background task, a WebSocket, async
SQLAlchemy with its instrumentation (examples/shop/db.py) and an outgoing httpx call to a
second local service (examples/shop/pricing.py, at SHOP_PRICING_URL). The suite serves it with
real servers and reads every view (tests/integration/test_fastapi_shop.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import APIRouter, BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from starlette.websockets import WebSocket

import otel_bridge
from examples.shop import db

STATIC = Path(__file__).parent / "static"
PRICING = os.environ.get("SHOP_PRICING_URL", "http://127.0.0.1:8001")


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


@users.get("/{uid}/products")
async def user_products(uid: int) -> dict[str, list[str]]:
    async with db.Session() as session:
        return {"products": await db.order_names(session, uid)}


@users.get("/{uid}/quote/{sku}")
async def quote(uid: int, sku: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=PRICING, timeout=5) as client:
        price = (await client.get(f"/prices/{sku}")).json()
    return {"uid": uid, "cents": price["cents"]}


orders = APIRouter(prefix="/orders", dependencies=[Depends(account)])


@orders.get("/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    return {"order": order_id}


async def send_receipt(sku: str) -> None:
    """A background task: runs after the response was sent, still part of the request."""
    with otel_bridge.timer(group="mail", op="send"):
        await asyncio.sleep(0)


@orders.post("/{sku}")
async def buy(sku: str, tasks: BackgroundTasks) -> dict[str, str]:
    if sku.startswith("sold-out"):
        raise OutOfStock(sku)
    tasks.add_task(send_receipt, sku)
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


@v1.get("/status")
@otel_bridge.healthcheck(schedule="every 10 minutes", assertions=["response.code = 200"])
async def status() -> dict[str, str]:
    """A healthcheck on a route of an included router (its prefix is part of its URL)."""
    return {"status": "ok"}


@otel_bridge.healthcheck(schedule="every 5 minutes")
async def health() -> dict[str, str]:
    return {"status": "ok"}


admin = FastAPI()


@admin.get("/stats")
async def stats() -> dict[str, int]:
    return {"orders": 0}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # The instrumentations services ship with: outgoing calls' spans, SQLAlchemy's queries.
    HTTPXClientInstrumentor().instrument()
    SQLAlchemyInstrumentor().instrument(engine=db.engine.sync_engine, enable_commenter=False)
    await db.create()
    yield
    await db.engine.dispose()


shop = FastAPI(title="shop", lifespan=lifespan)
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
