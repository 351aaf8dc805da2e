"""otel_bridge.django: Django's URL pattern reaches every view, under real gunicorn and uvicorn."""

from __future__ import annotations

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
