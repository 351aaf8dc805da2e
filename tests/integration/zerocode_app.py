"""One FastAPI app served both ways in tests/integration/test_zerocode.py: wrapped by
`instrument()` (`wrapped`), and left alone for `opentelemetry-instrument` (`app`)."""

from __future__ import annotations

import time

from fastapi import FastAPI, HTTPException

import otel_bridge

app = FastAPI()


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, int]:
    otel_bridge.tag(shard=str(item_id % 4))
    otel_bridge.wide_event.set(cart_items=3)
    otel_bridge.wide_event.incr("lookups")
    with otel_bridge.timer(group="db", op="select", table="items"):
        time.sleep(0.002)
    with otel_bridge.timer(group="cache", op="get"):
        pass
    return {"id": item_id}


@app.get("/fail")
def fail() -> None:
    raise HTTPException(status_code=503, detail="down for maintenance")


def make_wrapped() -> object:
    return otel_bridge.instrument(app)
