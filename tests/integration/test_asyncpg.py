"""asyncpg against a real PostgreSQL server (a private cluster), with its own instrumentation
and SQLAlchemy's on top: each query is one timer and counts once, concurrent queries are each
counted, and the db figures come from the spans (otel_bridge._database)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import Harness

from .postgres import Postgres

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t")


async def test_asyncpg_alone_and_under_sqlalchemy_count_each_query_once(
    harness: Harness, database: Postgres
) -> None:
    AsyncPGInstrumentor().instrument(tracer_provider=harness.tracer_provider)  # type: ignore[no-untyped-call]
    dsn = f"{database.user}:{database.password}@{database.host}:{database.port}/{database.database}"
    engine = create_async_engine(f"postgresql+asyncpg://{dsn}")
    SQLAlchemyInstrumentor().instrument(
        engine=engine.sync_engine, tracer_provider=harness.tracer_provider
    )
    pool = await asyncpg.create_pool(f"postgresql://{dsn}", min_size=3, max_size=3)
    # Outside any request: the pool's and the dialect's first-connection queries.
    async with engine.connect() as connection:
        await connection.execute(text("select 1"))
    await pool.fetchval("select 1")
    try:

        async def gathered(request: Any) -> PlainTextResponse:
            # Three queries of one statement at once: three queries, two of them duplicates.
            async def one(n: int) -> int:
                async with pool.acquire() as connection:
                    value: int = await connection.fetchval("select $1::int + 0", n)
                    return value

            values = await asyncio.gather(one(1), one(2), one(3))
            return PlainTextResponse(" ".join(map(str, values)))

        async def orm(request: Any) -> PlainTextResponse:
            # SQLAlchemy's span and asyncpg's own for each query: one query each.
            async with engine.connect() as connection:
                for n in range(3):
                    await connection.execute(text("select cast(:n as integer)"), {"n": n})
            return PlainTextResponse("ok")

        wrapped = harness.asgi(Starlette(routes=[Route("/gather", gathered), Route("/orm", orm)]))
        async with client(wrapped) as c:
            assert (await c.get("/gather")).text == "1 2 3"
            assert (await c.get("/orm")).text == "ok"
    finally:
        await pool.close()
        await engine.dispose()
        SQLAlchemyInstrumentor().uninstrument()
        AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    gather, orm_record = harness.records()
    # asyncpg's pool resets each connection it takes back (a query of its own): three
    # queries of ours and three resets, each a timer and a query, two of each shape again.
    assert [dict(t.tags)["op"] for t in gather.timers] == ["select"] * 6
    assert gather.fields[".db.query_count"] == 6
    assert gather.fields[".db.duplicate_queries"] == 4
    # SQLAlchemy's span holds asyncpg's for each of its three queries: one timer each; the
    # transaction's BEGIN and ROLLBACK (asyncpg's alone) are queries too; the pool's
    # checkout ("connect", no statement) a timer only.
    ops = [dict(t.tags)["op"] for t in orm_record.timers]
    assert ops == ["connect", "begin", "select", "select", "select", "rollback"]
    assert orm_record.fields[".db.query_count"] == 5
    assert {dict(t.tags).get("server") for t in orm_record.timers} == {"127.0.0.1"}
