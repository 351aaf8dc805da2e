"""Zero-code mode: the same FastAPI app under `opentelemetry-instrument` with our exporters
named in OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER, and wrapped by `instrument()`: the
Pinba packets and wide events must agree field by field, except the fields only the wrapper
can know (listed below)."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_bridge.exporters.pinba._proto import PinbaRequest, decode
from tests.exporters.pinba.test_exporter import request_tags_of, tags_of

from .servers import free_port, serve, uvicorn

pytestmark = pytest.mark.integration

# What only the wrapper measures: CPU time and body size (zero-code records carry 0), and the
# timing values themselves, which differ from run to run.
WRAPPER_ONLY_PINBA = {"document_size", "ru_utime", "ru_stime", "timer_ru_utime", "timer_ru_stime"}
WRAPPER_ONLY_EVENT = {
    "http.response.body.size",
    "http.response.completed",
    "app_duration_ms",
    "cpu_ms",
}
VARYING_PINBA = {"request_time", "timer_value", "memory_peak", "memory_footprint"}
VARYING_EVENT = {
    "timestamp",
    "duration_ms",
    "db.query_ms",
    "process.pid",
    "trace_id",
    "span_id",
    "request.id",
}


TOKEN = "zero-code-token-0123456789"


def zero_code(port: int) -> list[str]:
    # opentelemetry-instrument execs a program found by name: this venv's uvicorn script.
    command = str(Path(sys.executable).parent / "uvicorn")
    return [
        "tests.integration.instrument",
        command,
        *uvicorn("tests.integration.zerocode_app:app", port)[1:],
    ]


def wrapped(port: int) -> list[str]:
    return uvicorn("tests.integration.zerocode_app:make_wrapped", port, "--factory")


def drive(port: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        assert client.get("/items/42", params={"q": "pen"}).json() == {"id": 42}
        assert client.get("/items/7").json() == {"id": 7}
        assert client.get("/fail").status_code == 503
        assert client.get("/nowhere").status_code == 404


def run(
    args: list[str], port: int, env: dict[str, str], pinba: socket.socket, events: Path
) -> tuple[list[PinbaRequest], list[dict[str, Any]]]:
    with serve(args, port, env):
        drive(port)
        packets = sorted(
            (decode(pinba.recvfrom(65536)[0]) for _ in range(4)),
            key=lambda p: (p.script_name, p.status),
        )
        deadline = time.monotonic() + 10
        lines: list[str] = []
        while time.monotonic() < deadline and len(lines) < 4:
            lines = events.read_text().splitlines() if events.exists() else []
            time.sleep(0.05)
    found = sorted((json.loads(line) for line in lines), key=lambda e: e["url.path"])
    return packets, found


def common_env(pinba: socket.socket, events: Path) -> dict[str, str]:
    return {
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba.getsockname()[1]}",
        "OTEL_EXPORTER_PINBA_HOSTNAME": "it-host",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def test_zero_code_and_wrapped_give_the_same_pinba_packets_and_wide_events(
    tmp_path: Path,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pinba:
        pinba.bind(("127.0.0.1", 0))
        pinba.settimeout(15)
        port = free_port()
        zero_events = tmp_path / "zero.jsonl"
        zero_env = {
            **common_env(pinba, zero_events),
            "OTEL_TRACES_EXPORTER": "pinba,wide_events",
        }
        zero_packets, zero_found = run(zero_code(port), port, zero_env, pinba, zero_events)
        wrapped_events = tmp_path / "wrapped.jsonl"
        wrapped_env = {
            **common_env(pinba, wrapped_events),
            "OTEL_BRIDGE_EXPORTERS": "pinba,wide_events",
            "OTEL_TRACES_EXPORTER": "none",
        }
        port = free_port()
        wrapped_packets, wrapped_found = run(
            wrapped(port), port, wrapped_env, pinba, wrapped_events
        )

    assert [p.script_name for p in zero_packets] == [
        "/fail",
        "/items/{item_id}",
        "/items/{item_id}",
        "<unmatched>",
    ]
    for zero, mine in zip(zero_packets, wrapped_packets, strict=True):
        for name in vars(mine):
            if name in WRAPPER_ONLY_PINBA | VARYING_PINBA:
                continue
            assert getattr(zero, name) == getattr(mine, name), (name, zero, mine)
        assert tags_of(zero) == tags_of(mine), (tags_of(zero), tags_of(mine))
        assert request_tags_of(zero) == request_tags_of(mine)
        assert len(zero.timer_value) == len(mine.timer_value)
        assert zero.request_time > 0 and mine.request_time > 0
        assert zero.memory_peak > 0 and zero.memory_footprint > 0
    item = zero_packets[1]
    assert tags_of(item) == [
        {"group": "db", "op": "select", "table": "items"},
        {"group": "cache", "op": "get"},
        {"group": "db", "op": "select"},  # the two queries outside the app's timers
    ]
    # The query inside the app's db timer is that timer (left out once), both ways.
    assert item.timer_hit_count == [1, 1, 2]
    assert request_tags_of(item)["shard"] in {"2", "3"}
    assert item.timer_value[0] >= 0.002, "the db timer's own duration"

    assert [e["url.path"] for e in zero_found] == ["/fail", "/items/42", "/items/7", "/nowhere"]
    only_wrapped: set[str] = set()
    for zero_event, event in zip(zero_found, wrapped_found, strict=True):
        keys = set(event) - VARYING_EVENT
        only_wrapped |= keys - set(zero_event)
        for key in keys & set(zero_event):
            if key.startswith("timers.") and key.endswith(".ms"):
                continue  # durations
            assert zero_event[key] == event[key], (event["url.path"], key)
    assert only_wrapped == WRAPPER_ONLY_EVENT, "documented in otel_bridge.zerocode"
    assert all(zero_event["request.id"] == zero_event["trace_id"] for zero_event in zero_found)
    items = zero_found[1]
    assert (items["http.route"], items["url.query"], items["app.cart_items"]) == (
        "/items/{item_id}",
        "q=pen",
        3,
    )
    assert items["app.lookups"] == 1
    # The database figures, from the sqlite3 instrumentation's spans: each query once.
    assert (items["db.query_count"], items["db.duplicate_queries"]) == (3, 1)
    assert 0 < items["db.query_ms"] < items["duration_ms"]
    assert zero_found[0]["error.type"] == "503"


def test_zero_code_expvar_listens_on_its_own_loopback_port() -> None:
    port, vars_port = free_port(), free_port()
    env = {
        "OTEL_TRACES_EXPORTER": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": "stderr",
        "OTEL_METRICS_EXPORTER": "expvar",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_EXPVAR_LISTEN": f"127.0.0.1:{vars_port}",
        "OTEL_EXPORTER_EXPVAR_TOKEN": TOKEN,
        "OTEL_SEMCONV_STABILITY_OPT_IN": "http",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    authorized = {"authorization": f"Bearer {TOKEN}"}
    with serve(zero_code(port), port, env):
        drive(port)
        refused = httpx.get(f"http://127.0.0.1:{vars_port}/debug/vars", timeout=10)
        deadline = time.monotonic() + 10
        while True:
            document = httpx.get(
                f"http://127.0.0.1:{vars_port}/debug/vars", headers=authorized, timeout=10
            ).json()
            if document["requests"]["total"]["count"] >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        missing = httpx.get(f"http://127.0.0.1:{vars_port}/elsewhere", timeout=10)
    assert {"cmdline", "memstats", "requests", "otel"} <= set(document)
    assert document["requests"]["total"]["count"] == 4
    assert document["requests"]["by_route"]["/items/{item_id}"]["count"] == 2
    assert "http_server_request_duration" in document["otel"]
    assert missing.status_code == 404
    assert refused.status_code == 403, "the same access rules as the wrapper's endpoint"


def test_a_bad_variable_stops_zero_code_startup_naming_it() -> None:
    port = free_port()
    env = {
        "OTEL_TRACES_EXPORTER": "pinba",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_PINBA_ENDPOINT": "nowhere",
    }
    with pytest.raises(RuntimeError) as raised, serve(zero_code(port), port, env, timeout=20):
        pass
    assert "OTEL_EXPORTER_PINBA_ENDPOINT" in str(raised.value)
    assert "'nowhere': expected host:port" in str(raised.value)


def test_the_shop_under_zero_code_has_the_wrappers_timers_and_database_figures(
    tmp_path: Path,
) -> None:
    # examples/shop: async SQLAlchemy (its N+1 page), httpx to a second service, routers, a
    # mount, a background task. Served wrapped, then unwrapped under opentelemetry-instrument.
    from .test_fastapi_shop import VISIT, shop_env

    figures: dict[str, dict[tuple[str, str, int], dict[str, Any]]] = {}
    pricing_port = free_port()
    with serve(uvicorn("examples.shop.pricing:app", pricing_port), pricing_port):
        for mode in ("wrapped", "zero-code"):
            port = free_port()
            events = tmp_path / f"{mode}.jsonl"
            env = shop_env(
                tmp_path,
                pricing_port,
                OTEL_EXPORTER_WIDE_EVENTS_SINK=f"file:{events}",
                OTEL_METRICS_EXPORTER="none",
                OTEL_LOGS_EXPORTER="none",
                OTEL_SEMCONV_STABILITY_OPT_IN="http",
                OTEL_BSP_SCHEDULE_DELAY="200",
            )
            if mode == "wrapped":
                env.update(OTEL_BRIDGE_EXPORTERS="wide_events", OTEL_TRACES_EXPORTER="none")
                args = uvicorn("examples.shop.app:app", port)
            else:
                env.update(OTEL_TRACES_EXPORTER="wide_events")
                command = str(Path(sys.executable).parent / "uvicorn")
                args = [
                    "tests.integration.instrument",
                    command,
                    *uvicorn("examples.shop.app:shop", port)[1:],
                ]
            with serve(args, port, env):
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
                    for method, path, headers, _, _ in VISIT:
                        client.request(method, path, headers=headers)
                deadline = time.monotonic() + 15
                lines: list[str] = []
                while time.monotonic() < deadline and len(lines) < len(VISIT):
                    lines = events.read_text().splitlines() if events.exists() else []
                    time.sleep(0.1)
            figures[mode] = {
                (e["http.request.method"], e["url.path"], e["http.response.status_code"]): {
                    k: v
                    for k, v in e.items()
                    if k.startswith(("db.", "timers."))
                    and not k.endswith("_ms")
                    and not k.endswith(".ms")
                }
                for e in map(json.loads, lines)
            }
    wrapped, zero = figures["wrapped"], figures["zero-code"]
    assert sorted(zero) == sorted(wrapped) and len(zero) == len(VISIT)
    products = ("GET", "/api/v1/users/1/products", 200)
    assert zero[products]["db.query_count"] == 4 and zero[products]["db.duplicate_queries"] == 2
    # The receipt mail runs after the response: under zero-code the ASGI instrumentation's
    # server span has ended by then (docs/zero-code.md).
    bought = ("POST", "/api/v1/orders/sku-2", 200)
    assert wrapped[bought] == {"timers.count": 1, "timers.mail.count": 1}
    assert zero[bought] == {}
    del wrapped[bought], zero[bought]
    assert zero == wrapped
