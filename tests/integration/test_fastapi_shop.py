"""examples/shop, a FastAPI service as teams build them (routers with prefixes, a 401
dependency, an exception handler, a mounted app, StaticFiles, streaming, async SQLAlchemy with
its instrumentation, an httpx call to a second local service), served by uvicorn and by
gunicorn's uvicorn workers. Every view is read as its consumer reads it: wide events, Pinba's
packets decoded, /debug/vars, the spans (console exporter) and the healthcheck dry run."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.exporters.pinba.test_exporter import tags_of

from .pinba_reader import PinbaReader
from .servers import (
    ROOT,
    every_view,
    free_port,
    get_at_once,
    gunicorn,
    lines_written,
    python_path,
    serve,
    stop,
    uvicorn,
    wait_for,
)
from .test_uvicorn import _json_objects

pytestmark = pytest.mark.integration

APP = "examples.shop.app:app"
SERVERS = ("uvicorn", "gunicorn-uvicorn")
BEARER = {"authorization": "Bearer t"}
# (method, path, headers, status, route)
VISIT: list[tuple[str, str, dict[str, str], int, str | None]] = [
    ("GET", "/api/v1/users/1", {}, 200, "/api/v1/users/{uid}"),
    ("GET", "/api/v1/orders/5", {}, 401, "/api/v1/orders/{order_id}"),
    ("GET", "/api/v1/orders/5", BEARER, 200, "/api/v1/orders/{order_id}"),
    ("POST", "/api/v1/orders/sold-out-9", BEARER, 409, "/api/v1/orders/{sku}"),
    ("POST", "/api/v1/orders/sku-2", BEARER, 200, "/api/v1/orders/{sku}"),
    ("GET", "/api/v1/users/1/products", {}, 200, "/api/v1/users/{uid}/products"),
    ("GET", "/api/v1/users/1/quote/sku-1", {}, 200, "/api/v1/users/{uid}/quote/{sku}"),
    ("GET", "/api/v1/export", {}, 200, "/api/v1/export"),
    ("GET", "/admin/stats", {}, 200, "/admin/stats"),
    ("GET", "/static/css/site.css", {}, 200, "/static"),
    ("GET", "/api/v1/users/1/", {}, 307, None),
    ("GET", "/health", {}, 200, "/health"),
]


def shop_env(directory: Path, pricing_port: int, **more: str) -> dict[str, str]:
    """The shop's environment: its database in `directory`, its pricing service on
    `pricing_port`, spans to the console, and `more`."""
    return {
        "SHOP_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'shop.sqlite3'}",
        "SHOP_PRICING_URL": f"http://127.0.0.1:{pricing_port}",
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_TRACES_EXPORTER": "console",
        **more,
    }


@contextmanager
def served(
    args: list[str], port: int, directory: Path, **more: str
) -> Iterator[subprocess.Popen[str]]:
    """The shop served by `args` on `port` (`shop_env`: its database in `directory`, and
    `more`), with its pricing service on a port of its own."""
    pricing_port = free_port()
    with (
        serve(uvicorn("examples.shop.pricing:app", pricing_port), pricing_port),
        serve(args, port, shop_env(directory, pricing_port, **more)) as server,
    ):
        yield server


def command(name: str, port: int) -> list[str]:
    if name == "uvicorn":
        return uvicorn(APP, port)
    return gunicorn(APP, port, "--workers", "2", "-k", "uvicorn_worker.UvicornWorker")


@pytest.mark.parametrize("name", SERVERS)
def test_the_fastapi_shop_in_every_view(name: str, tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with served(
            command(name, port), port, tmp_path, **every_view(pinba.port, events_file)
        ) as server:
            statuses = []
            with httpx.Client(base_url=base, timeout=20) as client:
                for method, path, headers, _, _ in VISIT:
                    statuses.append(client.request(method, path, headers=headers).status_code)
            assert wait_for(lines_written(events_file, len(VISIT)), 15)
            document: dict[str, Any] = httpx.get(base + "/debug/vars", timeout=10).json()
            assert wait_for(lambda: len(pinba.packets) >= len(VISIT), 10)
            out, _ = stop(server)
    finally:
        pinba.close()
    assert statuses == [status for *_, status, _ in VISIT]

    events = sorted(
        (json.loads(line) for line in events_file.read_text().splitlines()),
        key=lambda event: event["timestamp"],
    )
    assert [(e["url.path"], e.get("http.route")) for e in events] == [
        (path, route) for _, path, _, _, route in VISIT
    ]
    by_path = {
        (e["http.request.method"], e["url.path"], e["http.response.status_code"]): e for e in events
    }
    products = by_path[("GET", "/api/v1/users/1/products", 200)]
    # SQLAlchemy's N+1: the lines, then each line's product (3): 4 queries, 2 of one shape.
    assert products["db.query_count"] == 4
    assert products["db.duplicate_queries"] == 2
    quote = by_path[("GET", "/api/v1/users/1/quote/sku-1", 200)]
    assert quote["timers.http.count"] == 1, "the outgoing call, a timer"
    assert "db.query_count" not in quote
    assert by_path[("POST", "/api/v1/orders/sold-out-9", 409)].get("error.type") is None
    # The background task ran after the response, inside the request: its timer is there.
    assert by_path[("POST", "/api/v1/orders/sku-2", 200)]["timers.mail.count"] == 1

    # Pinba: the db timers tagged by the SQL verb (never the SQLite file's path), the
    # outgoing call by method and host.
    def timer_tags(script_name: str) -> list[dict[str, str]]:
        [packet] = [p for p in pinba.packets if p.script_name == script_name]
        return tags_of(packet)

    db_tags = timer_tags("/api/v1/users/{uid}/products")
    assert {"group": "db", "op": "select"} in db_tags
    assert all(tags["group"] == "db" and "/" not in tags["op"] for tags in db_tags), db_tags
    assert timer_tags("/api/v1/users/{uid}/quote/{sku}") == [
        {"group": "http", "op": "GET", "server": "127.0.0.1"}
    ]
    assert {p.script_name for p in pinba.packets} == {r for *_, r in VISIT if r} | {"<redirect>"}

    by_route = document["requests"]["by_route"]
    assert by_route["/api/v1/orders/{order_id}"]["count"] == 2
    assert by_route["/api/v1/orders/{sku}"]["count"] == 2
    assert by_route["<redirect>"]["count"] == 1

    # The spans: the server span named by the full route, SQLAlchemy's and httpx's inside.
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    server_spans = {s["name"]: s for s in spans if s["kind"] == "SpanKind.SERVER"}
    assert "GET /api/v1/users/{uid}/products" in server_spans
    quote_span = server_spans["GET /api/v1/users/{uid}/quote/{sku}"]
    outgoing = [s for s in spans if s["parent_id"] == quote_span["context"]["span_id"]]
    assert [s["kind"] for s in outgoing] == ["SpanKind.CLIENT"]


@pytest.mark.parametrize("name", SERVERS)
def test_requests_served_at_once_each_count_their_own_timers(name: str, tmp_path: Path) -> None:
    # One event loop serves many requests at once: SQLAlchemy's queries and httpx's calls of
    # one request interleave with the others' at every await. Each request's figures, in every
    # view, must be its own timers, no other's.
    events_file = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    products, quote = "/api/v1/users/1/products", "/api/v1/users/1/quote/sku-1"
    paths = [quote if n % 2 else products for n in range(100)]
    try:
        with served(
            command(name, port), port, tmp_path, **every_view(pinba.port, events_file)
        ) as server:
            answers = get_at_once(f"http://127.0.0.1:{port}", paths, 16)
            assert wait_for(lambda: len(pinba.packets) >= len(paths), 20)
            assert wait_for(lines_written(events_file, len(paths)), 20)
            out, _ = stop(server)
    finally:
        pinba.close()
    assert [answer.status_code for answer in answers] == [200] * len(paths)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert sorted(event["url.path"] for event in events) == sorted(paths)
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    # SQLAlchemy's spans by trace: its queries, and a `connect` around each Engine.connect()
    # (a connection taken from the pool, or opened: a db timer, not a query).
    in_trace: dict[str, Counter[str]] = {}
    for span in spans:
        if "db.system" in span["attributes"]:
            kind = "connect" if span["name"] == "connect" else "query"
        elif span["kind"] == "SpanKind.CLIENT":
            kind = "call"
        else:
            continue
        in_trace.setdefault(span["context"]["trace_id"], Counter())[kind] += 1
    for event in events:
        found = in_trace.get("0x" + event["trace_id"], Counter())
        if event["url.path"] == products:
            # The lines, then each line's product (3): 4 queries, 2 of one shape.
            assert (event["db.query_count"], event["db.duplicate_queries"]) == (4, 2), event
            assert (found["query"], found["call"]) == (4, 0)
            assert event["timers.db.count"] == 4 + found["connect"], event
            assert "timers.http.count" not in event, event
        else:
            assert found == {"call": 1}
            assert event["timers.http.count"] == 1, event
            assert "db.query_count" not in event, event
    # Pinba: each page's timers, one packet each; the connects, as many as the spans say.
    hits: Counter[tuple[str, str, int]] = Counter()
    connects = 0
    for packet in pinba.packets:
        for tags, count in zip(tags_of(packet), packet.timer_hit_count, strict=True):
            if tags["op"] == "connect":
                connects += count
            else:
                hits[(packet.script_name, tags["op"], count)] += 1
    assert hits == {
        ("/api/v1/users/{uid}/products", "select", 4): 50,
        ("/api/v1/users/{uid}/quote/{sku}", "GET", 1): 50,
    }
    assert connects == sum(found["connect"] for found in in_trace.values())


def test_the_fastapi_shops_healthchecks_dry_run() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(PYTHONPATH=python_path(), OTEL_SERVICE_NAME="shop")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_bridge.cli",
            "healthchecks",
            "sync",
            "--app",
            APP,
            "--dry-run",
            "--public-url",
            "https://shop.example.com",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    payload = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    urls = sorted(monitor["request"]["url"] for monitor in payload["monitors"])
    # The one on a route of an included router carries the router's prefix.
    assert urls == ["https://shop.example.com/api/v1/status", "https://shop.example.com/health"]


def test_workers_starting_together_make_the_database_once(tmp_path: Path) -> None:
    # gunicorn forks its workers at once and each runs the app's startup: on one database file
    # the second one's CREATE TABLE or INSERT failed ("table ... already exists"), its startup
    # failed, and gunicorn stopped the whole server (found as a refused connection in CI).
    database = tmp_path / "shop.sqlite3"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        "PYTHONPATH": python_path(),
        "SHOP_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    script = "import asyncio\nfrom examples.shop import db\nasyncio.run(db.create())\n"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    errors = [worker.communicate(timeout=60)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], errors
    with sqlite3.connect(database) as connection:
        products = connection.execute("SELECT count(*) FROM products").fetchone()[0]
        lines = connection.execute("SELECT count(*) FROM order_lines").fetchone()[0]
    assert (products, lines) == (3, 3)


def _shop_spans(made_by: str, directory: Path) -> tuple[list[dict[str, Any]], str]:
    """The spans (console exporter) of one visit of the shop served by uvicorn, its spans made
    by `made_by` (tests/integration/watching.py), its database in `directory`; and what the
    server wrote to stderr."""
    directory.mkdir()
    port = free_port()
    app = uvicorn("tests.integration.watched_shop:app", port)
    with served(app, port, directory, SPANS_MADE_BY=made_by) as server:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            for method, path, headers, status, _ in VISIT:
                assert client.request(method, path, headers=headers).status_code == status
        out, err = stop(server)
    return [json.loads(chunk) for chunk in _json_objects(out)], err


def comparable_spans(spans: list[dict[str, Any]], directory: Path | None = None) -> list[str]:
    """Each span (as the console exporter writes it) as text without what differs from run to
    run (ids, times, the client's port and the server's, ports in URLs, the database file's
    `directory`, the instance id), with its ancestors' names instead of its parent's id;
    sorted. Every span ends at or after its start, and its parent is among `spans`."""
    by_id = {span["context"]["span_id"]: span for span in spans}

    def steady(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if directory is not None:
            value = value.replace(str(directory), "<tmp>")
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", value)

    def ancestors(span: dict[str, Any]) -> list[str]:
        names = []
        while span["parent_id"] is not None:
            span = by_id[span["parent_id"]]  # no remote parent: no traceparent was sent
            names.append(steady(span["name"]))
        return names

    shown = []
    for span in spans:
        assert span["end_time"] >= span["start_time"], span
        varying = ("client.port", "server.port") if span["kind"] == "SpanKind.SERVER" else ()
        attributes = {
            key: steady(value) for key, value in span["attributes"].items() if key not in varying
        }
        resource = dict(span["resource"]["attributes"])
        resource.pop("service.instance.id", None)
        item = {
            "name": steady(span["name"]),
            "kind": span["kind"],
            "ancestors": ancestors(span),
            "status": span["status"],
            "attributes": attributes,
            "events": [
                {key: value for key, value in event.items() if key != "timestamp"}
                for event in span["events"]
            ],
            "links": span["links"],
            "resource": resource,
        }
        shown.append(json.dumps(item, sort_keys=True))
    return sorted(shown)


def test_the_shops_spans_are_the_sdks(tmp_path: Path) -> None:
    # By default the server span, the timers' spans and SQLAlchemy's and httpx's spans are
    # built at the end (otel_bridge._spans, _timer_spans, _foreign_spans). With a processor
    # that watches spans start, the SDK makes each one itself: what it exports is the same.
    ours, ours_err = _shop_spans("bridge", tmp_path / "ours")
    sdk, sdk_err = _shop_spans("sdk", tmp_path / "sdk")
    # Each run made every span the way it claims.
    assert f"made by bridge: {len(ours)} spans" in ours_err
    assert f"made by sdk: {len(sdk)} spans" in sdk_err
    assert "on an ended span" not in ours_err + sdk_err
    kinds = {(span["kind"], span["name"].split(" ")[0]) for span in ours}
    assert {
        ("SpanKind.SERVER", "GET"),
        ("SpanKind.INTERNAL", "db"),  # otel_bridge.timer(group="db", op="select")
        ("SpanKind.CLIENT", "SELECT"),  # SQLAlchemy's
        ("SpanKind.CLIENT", "GET"),  # httpx's
    } <= kinds
    assert len(ours) == len(sdk) >= len(VISIT) + 7
    assert comparable_spans(ours, tmp_path / "ours") == comparable_spans(sdk, tmp_path / "sdk")
