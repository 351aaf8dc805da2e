"""A hostile client cannot grow a label set: 10,000 requests with invented paths, Hosts and
methods, against a FastAPI service (examples/shop) under uvicorn and a Django project under
gunicorn, every view on. Each view's names stay a handful, every request is still recorded,
and the real routes sent afterwards keep their own entries."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from .pinba_reader import PinbaReader
from .servers import free_port, gunicorn, serve, uvicorn, wait_for

pytestmark = pytest.mark.integration

FLOOD = 10_000


def hostile(index: int, rng: random.Random) -> tuple[str, str, dict[str, str]]:
    """One request a scanner or a fuzzer sends: (method, path, headers)."""
    token = f"{rng.getrandbits(48):012x}"
    kind = index % 6
    headers = {"host": f"{token}.invalid"} if index % 2 else {}
    if kind == 0:
        return "GET", f"/wp-admin/{token}.php", headers  # 404, no route
    if kind == 1:
        return "GET", f"/api/v1/users/{index}/", headers  # a trailing slash: redirected
    if kind == 2:
        return "GET", f"/static/{token}.js", headers  # 404 inside the StaticFiles mount
    if kind == 3:
        return f"X{token[:6].upper()}", f"/{token}", headers  # an invented method
    if kind == 4:
        return "GET", f"/api/v1/users/{token}", headers  # the route, a bad parameter: 422
    return "POST", f"/admin/{token}", headers  # 404 inside a mounted app


def flood(base: str, requests: list[tuple[str, str, dict[str, str]]]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def send(chunk: list[tuple[str, str, dict[str, str]]]) -> None:
        with httpx.Client(base_url=base, timeout=20) as client:
            for method, path, headers in chunk:
                status = client.request(method, path, headers=headers).status_code
                with lock:
                    statuses[status] += 1

    chunks = [requests[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, chunks))
    return statuses


def otel_series(document: dict[str, Any]) -> list[str]:
    return list(document["otel"].get("http_server_request_duration", {}))


def attribute_values(series: list[str], name: str) -> set[str]:
    values = set()
    for key in series:
        for pair in key.split(";"):
            attribute, _, value = pair.partition("=")
            if attribute == name:
                values.add(value)
    return values


def read_vars(base: str, expected: int) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def complete() -> bool:
        found.update(httpx.get(base + "/debug/vars", timeout=10).json())
        # The poll itself is a request too.
        return bool(found["requests"]["total"]["count"] >= expected)

    assert wait_for(complete, timeout=60), found.get("requests", {}).get("total")
    return found


def test_fastapi_service_under_uvicorn_keeps_every_view_bounded(tmp_path: Path) -> None:
    rng = random.Random(20)
    requests = [hostile(index, rng) for index in range(FLOOD)]
    real: list[tuple[str, str, dict[str, str]]] = [("GET", "/api/v1/users/1", {})] * 5
    real += [("GET", "/health", {})] * 3
    events = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "expvar,pinba,wide_events",
        "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba.port}",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        # The shop's SQLite database in the test's directory, not left in /tmp.
        "SHOP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite3'}",
        "OTEL_BRIDGE_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    try:
        with serve(uvicorn("examples.shop.app:app", port, "--log-level", "critical"), port, env):
            statuses = flood(base, requests)
            statuses += flood(base, real)
            document = read_vars(base, FLOOD + len(real))
            wait_for(lambda: sum(pinba.script_names.values()) >= FLOOD + len(real), 20)
    finally:
        pinba.close()
    assert sum(statuses.values()) == FLOOD + len(real)
    assert {404, 307, 422}.issubset(statuses), statuses

    # expvar: the routes table holds the real routes and a few labels, nothing invented.
    by_route = document["requests"]["by_route"]
    assert set(by_route) <= {
        "/api/v1/users/{uid}",
        "/health",
        "/static",
        "/admin",
        "/debug/vars",
        "<unmatched>",
        "<redirect>",
        "<no route>",
    }, sorted(by_route)
    assert by_route["/health"]["count"] == 3
    assert by_route["/api/v1/users/{uid}"]["count"] == 5 + FLOOD // 6 + (FLOOD % 6 > 4)
    assert by_route["<redirect>"]["count"] == FLOOD // 6 + (FLOOD % 6 > 1)
    assert document["requests"]["total"]["count"] >= FLOOD + len(real)

    # The OTel metrics' series: every route and method from a bounded set.
    series = otel_series(document)
    assert attribute_values(series, "http_route") <= {
        "/api/v1/users/{uid}",
        "/health",
        "/static",
        "/admin",
        "/debug/vars",
    }
    assert attribute_values(series, "http_request_method") <= {"GET", "POST", "_OTHER"}
    assert len(series) < 30

    # Pinba: script_name and server_name from a handful of values.
    assert set(pinba.script_names) <= set(by_route) | {"/debug/vars"}
    assert pinba.script_names["/health"] == 3
    assert set(pinba.server_names) == {"127.0.0.1", "<other host>"}
    assert pinba.server_names["<other host>"] > FLOOD // 4

    # Wide events: one per request, each with the path it had; the route field bounded.
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    requests_seen = [event for event in lines if event["event"] == "request"]
    assert len(requests_seen) >= FLOOD + len(real)
    routes = {event.get("http.route") for event in requests_seen}
    assert routes <= {"/api/v1/users/{uid}", "/health", "/static", "/admin", "/debug/vars", None}
    assert sum(1 for event in requests_seen if event["url.path"].startswith("/wp-admin/")) == (
        FLOOD // 6 + (FLOOD % 6 > 0)
    )


def test_django_project_under_gunicorn_labels_redirects_and_refused_hosts(
    tmp_path: Path,
) -> None:
    # APPEND_SLASH answers 301 and a Host outside ALLOWED_HOSTS 400, neither with a route.
    count = 2_000
    rng = random.Random(22)
    requests: list[tuple[str, str, dict[str, str]]] = []
    for index in range(count):
        token = f"{rng.getrandbits(40):010x}"
        if index % 3 == 0:
            requests.append(("GET", "/health", {"host": f"{token}.invalid"}))  # 400
        elif index % 3 == 1:
            requests.append(("GET", f"/users/{index}", {}))  # 301 to /users/<n>/
        else:
            requests.append(("GET", f"/{token}/", {}))  # 404
    pinba = PinbaReader()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "expvar,pinba",
        "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba.port}",
        "DJANGO_SETTINGS_MODULE": "tests.django_project.settings",
    }
    app = "tests.django_project.wsgi:application"
    args = gunicorn(app, port, "--workers", "1", "--log-level", "critical", hooks=False)
    try:
        with serve(args, port, env):
            statuses = flood(base, requests)
            flood(base, [("GET", "/users/1/", {})] * 4)
            document = read_vars(base, count + 4)
            wait_for(lambda: sum(pinba.script_names.values()) >= count + 4, 20)
    finally:
        pinba.close()
    assert statuses == Counter({400: 667, 301: 667, 404: 666})
    by_route = document["requests"]["by_route"]
    assert by_route["<bad request>"]["count"] == 667
    assert by_route["<redirect>"]["count"] == 667
    assert by_route["<unmatched>"]["count"] == 666
    assert by_route["/users/<int:uid>/"]["count"] == 4
    assert len(by_route) <= 6, sorted(by_route)
    assert set(pinba.script_names) <= set(by_route) | {"/debug/vars"}
    # ALLOWED_HOSTS is the list of known hosts: the invented ones are one label.
    assert set(pinba.server_names) == {"127.0.0.1", "<other host>"}
