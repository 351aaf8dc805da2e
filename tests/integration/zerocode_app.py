"""One FastAPI app served both ways in tests/integration/test_zerocode.py: wrapped by
`instrument()` (`wrapped`), and left alone for `opentelemetry-instrument` (`app`)."""

from __future__ import annotations

import sqlite3
import time

from fastapi import FastAPI, HTTPException

import otel_bridge

app = FastAPI()


@app.get("/items/{item_id}")
def item(item_id: int) -> dict[str, int]:
    otel_bridge.tag(shard=str(item_id % 4))
    otel_bridge.wide_event.set(cart_items=3)
    otel_bridge.wide_event.incr("lookups")
    # Real queries, traced by the sqlite3 instrumentation both ways.
    connection = sqlite3.connect(":memory:")
    try:
        cursor = connection.cursor()
        with otel_bridge.timer(group="db", op="select", table="items"):
            time.sleep(0.002)
            cursor.execute("SELECT 1")  # the app's timer stands for this query
        with otel_bridge.timer(group="cache", op="get"):
            pass
        for _ in range(2):  # the same statement twice: one duplicate
            cursor.execute("SELECT ? AS id", (item_id,))
    finally:
        connection.close()
    return {"id": item_id}


@app.get("/fail")
def fail() -> None:
    raise HTTPException(status_code=503, detail="down for maintenance")


def make_wrapped() -> object:
    # What `opentelemetry-instrument` does for the zero-code run.
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor

    SQLite3Instrumentor().instrument()
    return otel_bridge.instrument(app)
