"""FastAPI: `uvicorn examples.fastapi_app:app` (from the repository root)."""

from __future__ import annotations

from fastapi import FastAPI

import otel_bridge

api = FastAPI()


@api.get("/hello/{name}")
def hello(name: str) -> dict[str, str]:
    with otel_bridge.timer(group="greeting", op="compose"):
        return {"hello": name}


app = otel_bridge.instrument(api)
