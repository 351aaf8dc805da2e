"""A Starlette app with every view on, for tests/integration/test_faults.py.

FAULT names an exporter code path to break (`pinba`, `wide_events`, `expvar`) while the file
FAULT_FLAG exists: the test removes the file to end the fault, and the exporter must recover.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge

FAULT = os.environ.get("FAULT", "")
FLAG = Path(os.environ.get("FAULT_FLAG", "/nonexistent"))


def _break(owner: Any, name: str) -> None:
    original = getattr(owner, name)

    def broken(*args: Any, **kwargs: Any) -> Any:
        if FLAG.exists():
            raise RuntimeError(f"injected fault in {owner.__name__}.{name}")
        return original(*args, **kwargs)

    setattr(owner, name, broken)


if FAULT == "pinba":
    from otel_bridge.exporters.pinba import PinbaExporter

    _break(PinbaExporter, "packet")
elif FAULT == "wide_events":
    from otel_bridge.exporters.wide_events._event import EventBuilder

    _break(EventBuilder, "build")
    _break(EventBuilder, "line")  # what JSON Lines sinks use instead of build()
elif FAULT == "expvar":
    from otel_bridge.exporters.expvar._stats import RequestStats

    _break(RequestStats, "export")


@otel_bridge.healthcheck(path_params={"n": 1})
async def item(request: Request) -> PlainTextResponse:
    otel_bridge.tag(kind="item")
    with otel_bridge.timer(group="db", op="select"):
        pass
    return PlainTextResponse(f"item {request.path_params['n']}")


app = otel_bridge.instrument(Starlette(routes=[Route("/items/{n}", item)]))
