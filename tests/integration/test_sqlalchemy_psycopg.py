"""SQLAlchemy over psycopg on a real PostgreSQL, both instrumented, served by uvicorn and by
gunicorn's uvicorn workers, many requests at once: SQLAlchemy's span and psycopg's are
siblings around each query, and every view counts the query once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.exporters.pinba.test_exporter import tags_of

from .pinba_reader import PinbaReader
from .postgres import Postgres
from .servers import (
    every_view,
    free_port,
    get_at_once,
    gunicorn,
    lines_written,
    serve,
    stop,
    uvicorn,
    wait_for,
)
from .test_uvicorn import _json_objects

pytestmark = pytest.mark.integration

APP = "tests.integration.orm_app:app"
ITEMS = 5


@pytest.mark.parametrize("name", ["uvicorn", "gunicorn-uvicorn"])
def test_each_query_counts_once_though_two_instrumentations_see_it(
    name: str, database: Postgres, tmp_path: Path
) -> None:
    events_file = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    d = database
    env = {
        "ORM_DATABASE_URL": f"postgresql+psycopg://{d.user}:{d.password}@{d.host}:{d.port}/{d.database}",
        **every_view(pinba.port, events_file),
        "OTEL_TRACES_EXPORTER": "console",
    }
    args = (
        uvicorn(APP, port)
        if name == "uvicorn"
        else gunicorn(APP, port, "--workers", "2", "-k", "uvicorn_worker.UvicornWorker")
    )
    requests = 40
    try:
        with serve(args, port, env) as server:
            answers = get_at_once(f"http://127.0.0.1:{port}", [f"/items/{ITEMS}"] * requests, 8)
            assert wait_for(lines_written(events_file, requests), 20)
            assert wait_for(lambda: len(pinba.packets) >= requests, 20)
            out, _ = stop(server)
    finally:
        pinba.close()
    assert [answer.json()["names"][-1] for answer in answers] == [f"item {ITEMS}"] * requests

    # The layout: in each request, SQLAlchemy's span and psycopg's for each query, both
    # children of the server span (siblings). (The dialect's first queries on a new
    # connection are children of SQLAlchemy's connect span: part of that timer.)
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    servers = {s["context"]["span_id"] for s in spans if s["kind"] == "SpanKind.SERVER"}
    assert len(servers) == requests
    statements = Counter(
        s["parent_id"]
        for s in spans
        if "db.statement" in s["attributes"] and s["parent_id"] in servers
    )
    assert statements == dict.fromkeys(servers, 2 * (1 + ITEMS)), "each query seen twice"

    # Every view: 6 queries, 4 of them the same statement again; the timers, one per query
    # and one for the connection taken from the pool (SQLAlchemy's connect span).
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert len(events) == requests
    for event in events:
        figures = (event["db.query_count"], event["db.duplicate_queries"], event["timers.db.count"])
        assert figures == (1 + ITEMS, ITEMS - 1, 1 + ITEMS + 1), event
    hits = Counter(
        tuple(
            sorted(
                (tags["op"], count)
                for tags, count in zip(tags_of(p), p.timer_hit_count, strict=True)
            )
        )
        for p in pinba.packets
    )
    assert hits == {(("connect", 1), ("select", 1 + ITEMS)): requests}
