"""The app the `/debug/vars` benchmark serves: 1,000 user variables and 100 OTel metrics.

BENCH_VARS=1000 uvicorn benchmarks.expvar_app:app
"""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import metrics

import otel_bridge
from otel_bridge.exporters.expvar import Float, Int, String


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def spec(count: int) -> dict[str, Any]:
    """The variables, as the Go reference reads them (same names and values)."""
    floats = count * 4 // 10
    ints = count * 3 // 10
    strings = count - floats - ints
    return {
        "Floats": [index * 1.25 for index in range(floats)],
        "Ints": list(range(ints)),
        "Strings": [f"value {index}" for index in range(strings)],
        "MapKeys": ["a", "b"],
        "Maps": 100,
    }


def build(count: int) -> Any:
    app = otel_bridge.instrument(_hello, exporters="expvar")
    data = spec(count)
    for index, value in enumerate(data["Floats"]):
        Float(f"float_{index:04d}").set(value)
    for index, number in enumerate(data["Ints"]):
        Int(f"int_{index:04d}").set(number)
    for index, text in enumerate(data["Strings"]):
        String(f"string_{index:04d}").set(text)
    meter = metrics.get_meter("bench")
    for index in range(data["Maps"]):
        counter = meter.create_counter(f"metric_{index:03d}")
        counter.add(index, {"kind": "bench"})
    return app


app = build(int(os.environ.get("BENCH_VARS", "1000")))
