"""Database queries, whichever instrumentations see them (otel_bridge._database): each query
is one timer and counts once, its tags mean the same whoever made the span, and the wide
event's db figures come from the queries' spans for every framework."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import otel_bridge
from otel_bridge.django import _db
from otel_bridge.record import RequestRecord
from otel_bridge.timers import query_timer
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")


async def record_of(harness: Harness, view: Any, **kwargs: Any) -> RequestRecord:
    """The record of one request to `view` (a Starlette endpoint at /)."""
    wrapped = harness.asgi(Starlette(routes=[Route("/", view)]), **kwargs)
    async with client(wrapped) as c:
        await c.get("/")
    [record] = harness.records()
    return record


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "shop.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("create table users (id integer primary key, name text)")
        connection.execute("create table orders (id integer primary key, user_id integer)")
        connection.executemany("insert into users values (?, ?)", [(1, "a"), (2, "b"), (3, "c")])
        connection.executemany("insert into orders values (?, ?)", [(1, 1), (2, 1), (3, 2)])
    yield path


@pytest.fixture
def driver_spans(harness: Harness) -> Iterator[None]:
    """sqlite3's own instrumentation on (the driver's spans), off again after the test."""
    SQLite3Instrumentor().instrument(tracer_provider=harness.tracer_provider)
    yield
    SQLite3Instrumentor().uninstrument()


def n_plus_one(engine: Any) -> Starlette:
    """The N+1 pattern: the users, then each user's orders, one query each."""

    def orders(request: Any) -> PlainTextResponse:
        with engine.connect() as connection:
            users = connection.execute(text("select id from users order by id")).all()
            counts = [
                len(
                    connection.execute(
                        text("select id from orders where user_id = :uid"), {"uid": uid}
                    ).all()
                )
                for (uid,) in users
            ]
        return PlainTextResponse(" ".join(map(str, counts)))

    return Starlette(routes=[Route("/orders", orders)])


@pytest.mark.parametrize("driver_too", [False, True], ids=["sqlalchemy", "sqlalchemy+sqlite3"])
async def test_sqlalchemy_queries_count_once_with_the_sql_verb_as_op(
    harness: Harness, database: Path, driver_too: bool
) -> None:
    if driver_too:
        # The driver's instrumentation too: its span sits inside SQLAlchemy's.
        SQLite3Instrumentor().instrument(tracer_provider=harness.tracer_provider)
    engine = create_engine(f"sqlite:///{database}")
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=harness.tracer_provider)
    try:
        wrapped = harness.asgi(n_plus_one(engine))
        async with client(wrapped) as c:
            assert (await c.get("/orders")).text == "2 1 0"
    finally:
        SQLAlchemyInstrumentor().uninstrument()
        if driver_too:
            SQLite3Instrumentor().uninstrument()
        engine.dispose()
    [record] = harness.records()
    queries = [timer for timer in record.timers if dict(timer.tags)["op"] != "connect"]
    # One timer per query: 4, not 8 with the driver's spans inside SQLAlchemy's.
    assert [dict(timer.tags) for timer in queries] == [{"group": "db", "op": "select"}] * 4
    # SQLAlchemy's connect span: a db timer, no query (no statement) in the counts.
    assert [timer.kind for timer in record.timers if timer not in queries] == ["db"]
    assert {timer.name for timer in queries} != {"select"}, "SQLAlchemy's own spans are kept"
    assert str(database) not in repr([timer.tags for timer in record.timers])
    assert record.fields[".db.query_count"] == 4
    assert record.fields[".db.duplicate_queries"] == 2, "one statement, three users"
    milliseconds = record.fields[".db.query_ms"]
    assert isinstance(milliseconds, float) and milliseconds > 0
    statements = [
        s for s in harness.finished_spans() if s.attributes and "db.statement" in s.attributes
    ]
    # Every span still exported as made (the driver's also for SQLAlchemy's own queries).
    assert len(statements) >= 8 if driver_too else len(statements) == 4


async def test_a_query_timer_holding_a_drivers_span_counts_once(
    harness: Harness, database: Path, driver_spans: None
) -> None:
    # What Django's execute wrapper does (otel_bridge.django._db), with the driver's
    # instrumentation on: the driver's span is inside the query's, one query.

    async def view(request: Any) -> PlainTextResponse:
        connection = sqlite3.connect(database)
        try:
            for uid in (1, 1, 2):
                sql = "select id from orders where user_id = ?"
                attributes = {
                    "db.system.name": "sqlite",
                    "db.operation.name": "SELECT",
                    "db.query.text": sql,
                }
                with query_timer("SELECT", attributes):
                    connection.cursor().execute(sql, (uid,)).fetchall()
            with otel_bridge.timer(group="db", op="batch"):  # the app's own timer
                connection.cursor().execute("select count(*) from users").fetchall()
        finally:
            connection.close()
        return PlainTextResponse("ok")

    record = await record_of(harness, view)
    assert [(timer.name, dict(timer.tags)) for timer in record.timers] == [
        ("SELECT", {"group": "db", "op": "select"}),
        ("SELECT", {"group": "db", "op": "select"}),
        ("SELECT", {"group": "db", "op": "select"}),
        ("db batch", {"group": "db", "op": "batch"}),
    ], "the driver's spans left out, the app's timer kept"
    # The queries' spans: three from the query timers, one from the driver inside the app's
    # timer (a timer is not a query); the same statement again is a duplicate.
    assert record.fields[".db.query_count"] == 4
    assert record.fields[".db.duplicate_queries"] == 2
    spans = {s.name: s for s in harness.finished_spans()}
    assert spans["SELECT"].kind is SpanKind.CLIENT
    assert spans["SELECT"].attributes is not None
    assert spans["SELECT"].attributes["db.system.name"] == "sqlite"


async def test_past_max_timers_queries_are_still_counted(harness: Harness) -> None:
    async def view(request: Any) -> PlainTextResponse:
        for _ in range(7):
            with query_timer("SELECT", {"db.system.name": "sqlite", "db.query.text": "select 1"}):
                pass
        return PlainTextResponse("ok")

    settings = otel_bridge.Settings(exporters=()).replace(max_timers=3)
    record = await record_of(harness, view, settings=settings)
    assert (len(record.timers), record.timers_dropped) == (3, 4)
    assert record.fields[".db.query_count"] == 7


async def test_concurrent_queries_of_one_instrumentation_are_each_counted(
    harness: Harness,
) -> None:
    # asyncio.gather over a pool: one statement, overlapping spans of one instrumentation, all
    # children of the request. They are three queries (two duplicates), not one.
    tracer = harness.tracer_provider.get_tracer("opentelemetry.instrumentation.asyncpg")
    sql = "SELECT * FROM orders WHERE id = $1"

    async def query(delay: float) -> None:
        with tracer.start_as_current_span(
            "SELECT",
            kind=SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": sql},
        ):
            await asyncio.sleep(delay)

    async def view(request: Any) -> PlainTextResponse:
        await asyncio.gather(query(0.03), query(0.01), query(0.02))
        return PlainTextResponse("ok")

    record = await record_of(harness, view)
    assert len(record.timers) == 3
    assert record.fields[".db.query_count"] == 3
    assert record.fields[".db.duplicate_queries"] == 2


async def test_an_apps_timer_around_several_queries_keeps_their_timers(
    harness: Harness, database: Path, driver_spans: None
) -> None:
    async def view(request: Any) -> PlainTextResponse:
        connection = sqlite3.connect(database)
        try:
            with otel_bridge.timer(group="db", op="load_cart"):
                for sql in ("select 1", "select 2", "select 3"):
                    connection.cursor().execute(sql).fetchall()
        finally:
            connection.close()
        return PlainTextResponse("ok")

    record = await record_of(harness, view)
    ops = sorted(dict(timer.tags)["op"] for timer in record.timers)
    assert ops == ["load_cart", "select", "select", "select"], "each query a timer of its own"
    assert record.fields[".db.query_count"] == 3


async def test_past_max_timers_a_query_seen_twice_is_still_counted_once(
    harness: Harness, database: Path, driver_spans: None
) -> None:
    # Django's span holding the driver's, past the timers kept: each query once, not twice.

    async def view(request: Any) -> PlainTextResponse:
        connection = sqlite3.connect(database)
        try:
            for uid in range(6):
                sql = "select id from orders where user_id = ?"
                attributes = {"db.system.name": "sqlite", "db.query.text": sql}
                with query_timer("SELECT", attributes):
                    connection.cursor().execute(sql, (uid,)).fetchall()
        finally:
            connection.close()
        return PlainTextResponse("ok")

    settings = otel_bridge.Settings(exporters=()).replace(max_timers=2)
    record = await record_of(harness, view, settings=settings)
    assert record.fields[".db.query_count"] == 6


class _PublicOnly:
    """A finished span seen only through ReadableSpan's public API, as another SDK's might
    be (span_to_timer reads the SDK's fields when it can)."""

    def __init__(self, span: Any) -> None:
        self.name, self.kind, self.status = span.name, span.kind, span.status
        self.start_time, self.end_time = span.start_time, span.end_time
        self.instrumentation_scope = span.instrumentation_scope
        self.attributes = dict(span.attributes)


def test_child_spans_fold_the_same_through_the_public_api() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Status, StatusCode

    from otel_bridge.builder import TIMER_SCOPE
    from otel_bridge.child_spans import span_to_timer

    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    other, ours = provider.get_tracer("other"), provider.get_tracer(TIMER_SCOPE)
    with other.start_as_current_span("request"):
        with other.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": "GET", "url.full": "http://stock.test:81/x"},
        ):
            pass
        with other.start_as_current_span(
            "SELECT shop",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.query.text": "SELECT 1"},
        ) as query:
            query.set_status(Status(StatusCode.ERROR))
        with other.start_as_current_span("publish", attributes={"messaging.system": "kafka"}):
            pass
        with ours.start_as_current_span("cache get", attributes={"group": "cache", "op": "get"}):
            pass
    spans = [span for span in memory.get_finished_spans() if span.name != "request"]
    start = min(span.start_time or 0 for span in spans)
    timers = [span_to_timer(span, start, 0, 0) for span in spans]
    assert [(timer.kind, dict(timer.tags)) for timer in timers] == [
        ("http", {"group": "http", "op": "GET", "server": "stock.test"}),
        ("db", {"group": "db", "op": "select"}),
        ("messaging", {"group": "messaging", "op": "publish"}),
        ("cache", {"group": "cache", "op": "get"}),
    ]
    assert timers[1].error_type == "error"
    public: list[Any] = [_PublicOnly(span) for span in spans]
    assert [span_to_timer(span, start, 0, 0) for span in public] == timers


def postgres_connection() -> SimpleNamespace:
    """What Django's execute wrapper reads of a PostgreSQL connection."""
    settings = {"NAME": "shop", "HOST": "db.invalid", "PORT": "5432"}
    return SimpleNamespace(vendor="postgresql", settings_dict=settings)


def test_a_django_connection_keeps_each_statements_name_and_attributes() -> None:
    sql = 'SELECT "id" FROM "item" WHERE "id" = %s'
    connection = postgres_connection()
    name, attributes = _db.query_of(connection, sql)
    assert name == "SELECT shop"
    assert attributes == {
        "db.system.name": "postgresql",
        "db.namespace": "shop",
        "server.address": "db.invalid",
        "server.port": 5432,
        "db.operation.name": "SELECT",
        "db.query.text": sql,
    }
    # Django builds the SQL anew for each query: an equal string gets the same objects.
    assert _db.query_of(connection, "".join(["SELECT ", sql[7:]]))[1] is attributes
    sqlite = SimpleNamespace(vendor="sqlite", settings_dict={"NAME": "/srv/shop.sqlite3"})
    assert _db.query_of(sqlite, sql) == (
        "SELECT",
        {"db.system.name": "sqlite", "db.operation.name": "SELECT", "db.query.text": sql},
    )
    long = "select " + "x" * _db.KEPT_LENGTH
    assert _db.query_of(connection, long)[1] is not _db.query_of(connection, long)[1]

    class Composed:  # a driver's SQL object (psycopg's sql.Composed): unhashable
        __hash__ = None  # type: ignore[assignment]

    assert _db.query_of(connection, Composed())[1] == {
        **{key: attributes[key] for key in ("db.system.name", "db.namespace")},
        **{key: attributes[key] for key in ("server.address", "server.port")},
        "db.operation.name": "QUERY",
    }
    # Bounded: past KEPT_STATEMENTS statements it starts over.
    known = connection.__dict__["_otel_bridge_queries"][1]
    for n in range(_db.KEPT_STATEMENTS):
        _db.query_of(connection, f"select {n}")
    assert len(known) == 1 and sql not in known


async def test_django_queries_sharing_attributes_are_each_their_own_span(
    harness: Harness,
) -> None:
    """The same statement twice (an N+1), the second one failing: the kept attributes are
    never changed by a span, each span is the SDK's with its own outcome."""
    connection = postgres_connection()
    sql = 'SELECT "id" FROM "item" WHERE "id" = %s'

    def execute(sql: str, params: Any, many: bool, context: Any) -> None:
        if params == (2,):
            raise LookupError("gone")

    async def view(request: Any) -> PlainTextResponse:
        context = {"connection": connection}
        _db._record_query(execute, sql, (1,), False, context)
        with pytest.raises(LookupError):
            _db._record_query(execute, "".join(["SELECT ", sql[7:]]), (2,), False, context)
        return PlainTextResponse("ok")

    kept = dict(_db.query_of(connection, sql)[1])  # (a copy, made before)
    record = await record_of(harness, view)
    assert [(timer.tags, timer.error_type) for timer in record.timers] == [
        ((("group", "db"), ("op", "select"), ("server", "db.invalid")), None),
        ((("group", "db"), ("op", "select"), ("server", "db.invalid")), "LookupError"),
    ]
    assert record.fields[".db.query_count"] == 2
    assert record.fields[".db.duplicate_queries"] == 1
    first, second = (span for span in harness.finished_spans() if span.name == "SELECT shop")
    assert first.attributes == kept and first.status.is_ok
    assert second.attributes == {**kept, "error.type": "LookupError"}
    assert not second.status.is_ok
    assert _db.query_of(connection, sql)[1] == kept, "unchanged by the spans"
