from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge
from otel_bridge.timers import _flatten

from .conftest import Harness

pytestmark = pytest.mark.anyio


@otel_bridge.timer(group="sync-decorated")
def sync_work(x: int) -> int:
    return x * 2


@otel_bridge.timer(group="async-decorated")
async def async_work(x: int) -> int:
    await asyncio.sleep(0)
    return x + 1


async def endpoint(request: Any) -> PlainTextResponse:
    with otel_bridge.timer(group="outer"):
        with otel_bridge.timer(group="inner", n=1):
            pass
        async with otel_bridge.timer(group="async-cm"):
            await asyncio.sleep(0)
    results = await asyncio.gather(async_work(1), async_work(2))
    try:
        with otel_bridge.timer(group="failing"):
            raise LookupError("nope")
    except LookupError:
        pass
    return PlainTextResponse(f"{sync_work(3)} {results}")


async def test_every_form_of_timer_lands_in_the_record(harness: Harness) -> None:
    app = harness.asgi(Starlette(routes=[Route("/", endpoint)]))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/")).text == "6 [2, 3]"
    [record] = harness.records()
    groups = sorted(dict(t.tags)["group"] for t in record.timers)
    assert groups == sorted(
        [
            "outer",
            "inner",
            "async-cm",
            "async-decorated",
            "async-decorated",
            "failing",
            "sync-decorated",
        ]
    )
    failing = next(t for t in record.timers if dict(t.tags)["group"] == "failing")
    assert failing.error_type == "LookupError"
    spans = {s.name: s for s in harness.finished_spans()}
    inner, outer = spans["inner 1"], spans["outer"]
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


def test_timer_outside_a_request_still_runs_the_code() -> None:
    with otel_bridge.timer(group="cli"):
        value = 1 + 1
    assert value == 2
    assert sync_work(4) == 8


def test_tags_flatten_like_pynba() -> None:
    tags = _flatten(
        {
            "group": "db",
            "server": {"host": "db1", "port": 5432},
            "tables": ["users", "orders"],
            "hit": True,
            "none": None,
            "obj": object,
        }
    )
    assert tags == {
        "group": "db",
        "server.host": "db1",
        "server.port": 5432,
        "tables": ("users", "orders"),
        "hit": True,
        "none": "",
        "obj": str(object),
    }


def test_name_tag_names_the_span(harness: Harness) -> None:
    timer = otel_bridge.timer(name="render", template="home.html")
    assert timer._name == "render"
    assert otel_bridge.timer()._name == "timer"


def test_a_timers_group_is_its_kind_when_it_is_a_short_name(monkeypatch: Any) -> None:
    from otel_bridge import record

    assert [record.timer_kind(group) for group in ("db", "cache-l2", "svc.v1", "a_b")] == [
        "db",
        "cache-l2",
        "svc.v1",
        "a_b",
    ]
    # Not a name a view should make a key of: the timer is custom.
    assert [record.timer_kind(group) for group in (None, 3, ("db",), "", "x" * 33)] == [
        "custom"
    ] * 5
    assert [record.timer_kind(group) for group in ("two words", "naïve", "db;drop")] == [
        "custom"
    ] * 3
    # Bounded: past 64 groups (a group made from data, shard17…) a new one is custom, the
    # ones seen before keep their kind.
    monkeypatch.setattr(record, "_KINDS", {f"g{n}": f"g{n}" for n in range(64)})
    assert record.timer_kind("fresh") == "custom"
    assert record.timer_kind("g3") == "g3"
    assert "fresh" not in record._KINDS
