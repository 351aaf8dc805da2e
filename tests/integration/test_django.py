"""otel_bridge.django: Django's URL pattern reaches every view, under real gunicorn and uvicorn."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .servers import free_port, serve

pytestmark = pytest.mark.integration

SERVERS = {
    "wsgi-gunicorn": [
        "gunicorn",
        "tests.django_project.wsgi:application",
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--bind",
    ],
    "asgi-uvicorn": [
        "uvicorn",
        "tests.django_project.asgi:application",
        "--log-level",
        "warning",
        "--port",
    ],
}


def bind(name: str, port: int) -> list[str]:
    address = f"127.0.0.1:{port}" if name.startswith("wsgi") else str(port)
    return [*SERVERS[name], address]


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_route_templates_of_path_re_path_sync_and_async_views(name: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(bind(name, port), port, {"OTEL_BRIDGE_EXPORTERS": "expvar"}):
        assert httpx.get(base + "/users/7/").text.startswith("user 7 ")
        assert httpx.get(base + "/users/8/").status_code == 200
        assert httpx.get(base + "/items/blue-pen").text == "item blue-pen"
        assert httpx.get(base + "/archive/2024/").text == "archive 2024"
        assert httpx.get(base + "/fail").status_code == 500
        assert httpx.get(base + "/nowhere").status_code == 404
        records: list[dict[str, Any]] = httpx.get(base + "/_records", timeout=10).json()
        by_route = httpx.get(base + "/debug/vars", timeout=10).json()["requests"]["by_route"]
    routes = [(r["path"], r["route"], r["status"]) for r in records]
    assert routes == [
        ("/users/7/", "/users/<int:uid>/", 200),
        ("/users/8/", "/users/<int:uid>/", 200),
        ("/items/blue-pen", "/items/<slug:name>", 200),
        ("/archive/2024/", "^archive/(?P<year>[0-9]{4})/$", 200),
        ("/fail", "/fail", 500),
        ("/nowhere", None, 404),
    ]
    assert records[0]["attributes"] == {"http.route": "/users/<int:uid>/"}
    assert records[0]["timers"] == [{"group": "db", "op": "select"}], "timers inside a view"
    assert by_route["/users/<int:uid>/"]["count"] == 2
    assert by_route["<unmatched>"]["count"] == 1


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_orm_queries_become_timers_and_wide_event_counts(name: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    events_file = tmp_path / "events.jsonl"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events_file}",
        "DJANGO_TEST_DB": str(tmp_path / "db.sqlite3"),
    }
    with serve(bind(name, port), port, env):
        assert httpx.get(base + "/notes").text == "hello hello 1"
        assert httpx.get(base + "/users/1/").status_code == 200
        records: list[dict[str, Any]] = httpx.get(base + "/_records", timeout=10).json()
    notes = records[0]
    assert notes["route"] == "/notes"
    ops = sorted(timer["op"] for timer in notes["timers"])
    assert ops == ["select", "select", "select"], "one timer per query, the SQL verb as op"
    assert {timer["group"] for timer in notes["timers"]} == {"db"}
    assert {timer["server"] for timer in notes["timers"]} == {"default"}
    deadline = time.monotonic() + 10
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(events) < 2:
        if events_file.exists():
            events = [json.loads(line) for line in events_file.read_text().splitlines()]
        time.sleep(0.1)
    by_path = {event["url.path"]: event for event in events}
    assert by_path["/notes"]["db.query_count"] == 3
    assert by_path["/notes"]["db.duplicate_queries"] == 1
    assert by_path["/notes"]["db.query_ms"] > 0
    assert not any(key.startswith("app.") for key in by_path["/notes"])
    assert "db.query_count" not in by_path["/users/1/"], "no queries, no db fields"
