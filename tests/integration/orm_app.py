"""A FastAPI service on SQLAlchemy over psycopg, both instrumented (what
`opentelemetry-instrument` sets up for it): each query is SQLAlchemy's span and psycopg's
beside it. `ORM_DATABASE_URL` names the database."""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from sqlalchemy import create_engine, text

import otel_bridge

engine = create_engine(os.environ["ORM_DATABASE_URL"], pool_size=4)
PsycopgInstrumentor().instrument()
SQLAlchemyInstrumentor().instrument(engine=engine, enable_commenter=False)
service = FastAPI()


@service.get("/items/{count}")
def items(count: int) -> dict[str, list[str]]:
    """An N+1: the ids, then each one's name (a sync view: Starlette's thread pool)."""
    with engine.connect() as connection:
        ids = [
            row[0]
            for row in connection.execute(text("select generate_series(1, :n)"), {"n": count})
        ]
        names = [
            connection.execute(text("select 'item ' || :id"), {"id": id_}).scalar_one()
            for id_ in ids
        ]
    return {"names": names}


app = otel_bridge.instrument(service)
