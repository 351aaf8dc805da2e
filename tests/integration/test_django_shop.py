"""examples/django_shop, a Django project as teams build them, on a real PostgreSQL server
(a private cluster: tests/integration/postgres.py) with psycopg's own instrumentation on beside
Django's query spans, served by gunicorn (sync, gthread) and uvicorn. A visitor browses, signs
in and orders; every view is then read as its consumer reads it: the wide events, Pinba's
packets decoded, /debug/vars, the spans (console exporter) and the healthcheck dry run. The
same project without the driver's instrumentation checks the query figures against the spans."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .pinba_reader import PinbaReader
from .postgres import Postgres, postgres_server
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
from .test_fastapi_shop import comparable_spans
from .test_uvicorn import _json_objects

pytestmark = pytest.mark.integration

MANAGE = ROOT / "examples" / "django_shop" / "manage.py"
WSGI = "examples.django_shop.shop.wsgi:application"
ASGI = "examples.django_shop.shop.asgi:application"
SERVERS = ("gunicorn-sync", "gunicorn-gthread", "uvicorn")
BOOKS = 5  # examples/django_shop/catalog/management/commands/seed.py


def manage(database: Postgres, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(database.environ(), PYTHONPATH=python_path(), OTEL_SERVICE_NAME="shop")
    environment["OTEL_EXPORTER_CRONITOR_PUBLIC_URL"] = "https://shop.example.com"
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def database() -> Iterator[Postgres]:
    with postgres_server() as server:
        manage(server, "migrate", "--noinput")
        assert "5 books, 1 orders" in manage(server, "seed").stdout
        yield server


def command(name: str, port: int, wsgi: str = WSGI, asgi: str = ASGI) -> list[str]:
    if name == "uvicorn":
        return uvicorn(asgi, port)
    if name == "gunicorn-gthread":
        return gunicorn(wsgi, port, "--workers", "1", "--threads", "4", "-k", "gthread")
    return gunicorn(wsgi, port, "--workers", "2")


def visit(base: str) -> list[tuple[str, str, int]]:
    """What a visitor does: browse, mistype, sign in, order. (method, path, status) each."""
    seen: list[tuple[str, str, int]] = []
    with httpx.Client(base_url=base, timeout=20) as client:

        def go(method: str, path: str, **kwargs: Any) -> httpx.Response:
            response = client.request(method, path, **kwargs)
            seen.append((method, path, response.status_code))
            return response

        assert len(go("GET", "/catalog/books/").json()["books"]) == BOOKS
        assert go("GET", "/catalog/books/2/").json()["title"] == "Sketch of the Engine"
        assert go("GET", "/catalog/archive/1843/").text == "Notes on the Analytical Engine"
        go("GET", "/catalog/books")  # APPEND_SLASH: 301
        go("GET", "/staff/catalog/books/")
        go("GET", "/orders/")  # login_required: 302
        form = go("GET", "/accounts/login/").text
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert token is not None
        go(
            "POST",
            "/accounts/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": "ada",
                "password": "lovelace-1843",
            },
        )
        assert go("GET", "/orders/").json() == {"orders": ["Notes on the Analytical Engine"]}
        go("GET", "/admin/")  # not staff: to the admin's login
        go("GET", "/health/")
        go("GET", "/", headers={"host": "evil.invalid"})  # not in ALLOWED_HOSTS: 400
        go("GET", "/nowhere/")
    return seen


EXPECTED = [
    ("GET", "/catalog/books/", 200, "/catalog/books/"),
    ("GET", "/catalog/books/2/", 200, "/catalog/books/<int:pk>/"),
    ("GET", "/catalog/archive/1843/", 200, "/catalog/archive/(?P<year>[0-9]{4})/"),
    ("GET", "/catalog/books", 301, None),
    ("GET", "/staff/catalog/books/", 200, "/staff/catalog/books/"),
    ("GET", "/orders/", 302, "/orders/"),
    ("GET", "/accounts/login/", 200, "/accounts/login/"),
    ("POST", "/accounts/login/", 302, "/accounts/login/"),
    ("GET", "/orders/", 200, "/orders/"),
    ("GET", "/admin/", 302, "/admin/"),
    ("GET", "/health/", 200, "/health/"),
    ("GET", "/", 400, None),
    ("GET", "/nowhere/", 404, None),
]


def shop_views(database: Postgres, pinba: PinbaReader, events_file: Path) -> dict[str, str]:
    """The shop's environment with every view on, read by `pinba` and in `events_file`, and
    the spans printed."""
    return {
        **database.environ(),
        **every_view(pinba.port, events_file),
        "DJANGO_SETTINGS_MODULE": "examples.django_shop.shop.settings",
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_TRACES_EXPORTER": "console",
    }


@pytest.mark.parametrize("name", SERVERS)
def test_the_shop_in_every_view(name: str, database: Postgres, tmp_path: Path) -> None:
    events_file = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = shop_views(database, pinba, events_file)
    try:
        with serve(command(name, port), port, env) as server:
            seen = visit(base)
            assert wait_for(lines_written(events_file, len(EXPECTED)), 15)
            document: dict[str, Any] = httpx.get(base + "/debug/vars", timeout=10).json()
            assert wait_for(lambda: len(pinba.packets) >= len(EXPECTED), 10)
            out, _ = stop(server)
    finally:
        pinba.close()
    assert seen == [(method, path, status) for method, path, status, _ in EXPECTED]

    # Wide events: one per request, the route Django matched written one way.
    events = sorted(
        (json.loads(line) for line in events_file.read_text().splitlines()),
        key=lambda event: event["timestamp"],
    )
    assert [
        (e["http.request.method"], e["url.path"], e["http.response.status_code"]) for e in events
    ] == [(method, path, status) for method, path, status, _ in EXPECTED]
    assert [e.get("http.route") for e in events] == [route for *_, route in EXPECTED]
    books = events[0]
    # The N+1 page: the books, then each one's author. psycopg's spans sit inside Django's:
    # each query counts once.
    # (A worker's first request also runs its connection's setup query.)
    queries = books["db.query_count"]
    assert 1 + BOOKS <= queries <= 2 + BOOKS
    assert books["db.duplicate_queries"] == BOOKS - 1
    assert books["timers.db.count"] == queries
    assert books["django.view"] == "examples.django_shop.catalog.views.book_list"
    assert events[8]["user.id"] is not None, "the signed-in visitor's orders"

    # Pinba: script names from the routes and a few labels; the db timers tagged by verb and
    # host, one query one hit.
    names = [packet.script_name for packet in pinba.packets]
    assert set(names) == {route or "" for *_, route in EXPECTED} - {""} | {
        "<redirect>",
        "<bad request>",
        "<unmatched>",
    }
    [books_packet] = [p for p in pinba.packets if p.script_name == "/catalog/books/"]
    words = books_packet.dictionary
    tags = {
        words[n]: words[v]
        for n, v in zip(books_packet.timer_tag_name, books_packet.timer_tag_value, strict=True)
    }
    assert tags == {"group": "db", "op": "select", "server": "127.0.0.1"}
    assert list(books_packet.timer_hit_count) == [queries]
    assert {packet.server_name for packet in pinba.packets} == {"127.0.0.1", "<other host>"}

    # /debug/vars: per route, the server's figures (gunicorn's workers merged).
    by_route = document["requests"]["by_route"]
    assert by_route["/catalog/books/"]["count"] == 1
    assert by_route["/orders/"]["count"] == 2
    assert by_route["<redirect>"]["count"] == 1

    # The spans: Django's query spans as the database conventions describe them, psycopg's
    # inside them.
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    trace_id = next(s for s in spans if s["name"] == "GET /catalog/books/")["context"]["trace_id"]
    in_trace = [s for s in spans if s["context"]["trace_id"] == trace_id]
    database_spans = [s for s in in_trace if {"db.system.name", "db.system"} & set(s["attributes"])]
    database_ids = {s["context"]["span_id"] for s in database_spans}
    outermost = [s for s in database_spans if s["parent_id"] not in database_ids]
    assert len(outermost) == queries, "each query counted once, by its outermost span"
    django_queries = [s for s in in_trace if s["name"] == "SELECT shop"]
    assert len(django_queries) == 1 + BOOKS
    for span in django_queries:
        assert span["kind"] == "SpanKind.CLIENT"
        attributes = span["attributes"]
        assert attributes["db.system.name"] == "postgresql"
        assert attributes["db.namespace"] == "shop"
        assert attributes["db.operation.name"] == span["name"].split()[0]
        assert (attributes["server.address"], attributes["server.port"]) == (
            "127.0.0.1",
            database.port,
        )
        assert attributes["db.query.text"].upper().startswith(attributes["db.operation.name"])
    ids = {span["context"]["span_id"] for span in django_queries}
    driver = [s for s in in_trace if s["parent_id"] in ids]
    assert len(driver) == 1 + BOOKS, "psycopg's own span inside each"
    assert {s["attributes"].get("db.system") for s in driver} == {"postgresql"}


# The project, its spans counted by who made them (watching.py).
WATCHED = {
    "gunicorn-sync": "tests.integration.watched_django_wsgi:application",
    "uvicorn": "tests.integration.watched_django_asgi:application",
}


@pytest.mark.parametrize("name", WATCHED)
def test_the_shops_spans_are_the_sdks(name: str, database: Postgres) -> None:
    # By default the server span, Django's query timers and psycopg's spans are built at the
    # end (otel_bridge._spans, _timer_spans, _foreign_spans). With a processor that watches
    # spans start, the SDK makes each one itself: what it exports is the same.
    env = {
        **database.environ(),
        "DJANGO_SETTINGS_MODULE": "examples.django_shop.shop.settings",
        "OTEL_SERVICE_NAME": "shop",
        "OTEL_TRACES_EXPORTER": "console",
    }
    runs = []
    for made_by in ("bridge", "sdk"):
        port = free_port()
        if name == "uvicorn":
            args = uvicorn(WATCHED[name], port)
        else:  # one worker: a worker's first request also runs its connection's setup query
            args = gunicorn(WATCHED[name], port, "--workers", "1")
        with serve(args, port, {**env, "SPANS_MADE_BY": made_by}) as server:
            seen = visit(f"http://127.0.0.1:{port}")
            out, err = stop(server)
        assert seen == [(method, path, status) for method, path, status, _ in EXPECTED]
        spans = [json.loads(chunk) for chunk in _json_objects(out)]
        # Each run made every span the way it claims.
        assert f"made by {made_by}: {len(spans)} spans" in err
        assert "on an ended span" not in err
        runs.append(spans)
    ours, sdk = runs
    kinds = {(span["kind"], span["name"]) for span in ours}
    assert {
        ("SpanKind.SERVER", "GET /catalog/books/"),
        ("SpanKind.CLIENT", "SELECT shop"),  # Django's query timers
        ("SpanKind.CLIENT", "SELECT"),  # psycopg's
    } <= kinds, kinds
    assert len(ours) == len(sdk) >= len(EXPECTED) + 2 * (1 + BOOKS)
    assert comparable_spans(ours) == comparable_spans(sdk)


def test_healthchecks_of_a_url_conf_included_twice_have_namespaced_keys(
    database: Postgres,
) -> None:
    result = manage(database, "healthchecks")
    keys = re.findall(r'"key": "([^"]+)"', result.stdout)
    assert sorted(keys) == ["shop-catalog-books", "shop-health", "shop-staff-books"]
    assert "3 monitors; nothing sent (dry run)" in result.stdout + result.stderr


# The shop with Django's query spans alone (most projects instrument no driver): each query a
# timer of its own, one after the other, which the C core folds (tests/integration/shop_plain).
PLAIN = {"wsgi": "tests.integration.shop_plain:wsgi", "asgi": "tests.integration.shop_plain:asgi"}


def plain_queries(event: dict[str, Any]) -> int:
    """The queries the plain shop's page in `event` makes (the list's N+1, one for a book's
    page), once the event's figures are checked to count them so."""
    queries = 1 + BOOKS if event["url.path"] == "/catalog/books/" else 1
    assert event["db.query_count"] == event["timers.db.count"] == queries, event
    assert event["db.duplicate_queries"] == (BOOKS - 1 if queries > 1 else 0), event
    return queries


@pytest.mark.parametrize(
    ("name", "core"), [("gunicorn-sync", "c"), ("uvicorn", "c"), ("gunicorn-sync", "python")]
)
def test_each_query_is_counted_and_timed_in_every_view(
    name: str, core: str, database: Postgres, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **shop_views(database, pinba, events_file),
        "OTEL_BRIDGE_PURE_PYTHON": "true" if core == "python" else "false",
    }
    try:
        with serve(command(name, port, **PLAIN), port, env) as server:
            for _ in range(3):
                assert httpx.get(base + "/catalog/books/", timeout=20).status_code == 200
            assert httpx.get(base + "/catalog/books/2/", timeout=20).status_code == 200
            assert wait_for(lambda: len(pinba.packets) >= 4, 10)
            timers = httpx.get(base + "/debug/vars", timeout=10).json()["otel_bridge"]["timers"]
            out, _ = stop(server)
    finally:
        pinba.close()
    assert timers.startswith(core), timers
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    packets = {
        (packet.request_time, packet.script_name): packet
        for packet in pinba.packets
        if packet.script_name.startswith("/catalog/")
    }
    assert len(events) == len(packets) == 4
    for event in events:
        queries = plain_queries(event)
        # The figures are the spans' own: Django's query spans in this request's trace.
        in_trace = [
            s
            for s in spans
            if s["context"]["trace_id"] == "0x" + event["trace_id"] and s["name"] == "SELECT shop"
        ]
        assert len(in_trace) == queries
        milliseconds = sum(
            (_instant(s["end_time"]) - _instant(s["start_time"])).total_seconds() * 1e3
            for s in in_trace
        )
        assert abs(event["db.query_ms"] - milliseconds) < 0.01, (event, milliseconds)
        assert event["timers.db.ms"] == event["db.query_ms"]
    for packet in packets.values():
        words = packet.dictionary
        tags = {
            words[n]: words[v]
            for n, v in zip(packet.timer_tag_name, packet.timer_tag_value, strict=True)
        }
        assert tags == {"group": "db", "op": "select", "server": "127.0.0.1"}
    hits = sorted(list(packet.timer_hit_count) for packet in packets.values())
    assert hits == [[1], [1 + BOOKS], [1 + BOOKS], [1 + BOOKS]]


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn-gthread"])
def test_requests_served_at_once_each_count_their_own_queries(
    name: str, database: Postgres, tmp_path: Path
) -> None:
    # Under uvicorn the async view's queries (`aget`) all run on asgiref's one thread for sync
    # code, in turn with other requests' queries; under gthread, requests share a process on
    # four threads. Each request's figures must still be its own queries, no other's.
    events_file = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    paths = [f"/catalog/books/{1 + n % BOOKS}/" if n % 2 else "/catalog/books/" for n in range(100)]
    try:
        with serve(
            command(name, port, **PLAIN), port, shop_views(database, pinba, events_file)
        ) as server:
            statuses = [answer.status_code for answer in get_at_once(base, paths, 16)]
            assert wait_for(lambda: len(pinba.packets) >= len(paths), 20)
            assert wait_for(lines_written(events_file, len(paths)), 20)
            out, _ = stop(server)
    finally:
        pinba.close()
    assert statuses == [200] * len(paths)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert sorted(event["url.path"] for event in events) == sorted(paths)
    queries_in_trace = Counter(
        span["context"]["trace_id"]
        for span in map(json.loads, _json_objects(out))
        if span["name"] == "SELECT shop"
    )
    for event in events:
        assert queries_in_trace["0x" + event["trace_id"]] == plain_queries(event), event
    hits = Counter(
        (packet.script_name, tuple(packet.timer_hit_count))
        for packet in pinba.packets
        if packet.script_name.startswith("/catalog/")
    )
    assert hits == {("/catalog/books/", (1 + BOOKS,)): 50, ("/catalog/books/<int:pk>/", (1,)): 50}


def _instant(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_shops_queries_seen_twice_are_folded_in_c(database: Postgres, tmp_path: Path) -> None:
    # psycopg's instrumentation sets its span's attributes after its start, inside Django's
    # query span: each query is counted once, and, but for the process's first request (its
    # tags new), the request's timers are folded in C (otel_bridge._speedups).
    events_file = tmp_path / "events.jsonl"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(
        database.environ(),
        PYTHONPATH=python_path(),
        DJANGO_SETTINGS_MODULE="examples.django_shop.shop.settings",
        OTEL_SERVICE_NAME="shop",
        OTEL_BRIDGE_EXPORTERS="wide_events",
        OTEL_EXPORTER_WIDE_EVENTS_SINK=f"file:{events_file}",
    )
    paths = ["/catalog/books/"] * 4 + ["/catalog/books/2/"]
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.fold_probe", str(events_file), *paths],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    events = found["events"]
    assert [event["url.path"] for event in events] == paths
    for event in events:
        # Each request opens its connection (CONN_MAX_AGE 0): psycopg's span of the setup
        # query, outside Django's, is one query more.
        queries = (1 + BOOKS if event["url.path"] == "/catalog/books/" else 1) + 1
        assert event["db.query_count"] == event["timers.db.count"] == queries, event
        assert event["db.duplicate_queries"] == (BOOKS - 1 if queries > 2 else 0)
    assert found["python_folds"] <= 1, "the Python fold for the first request's new tags only"
