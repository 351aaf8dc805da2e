"""Database queries of a Django request: a span each, as OpenTelemetry's database conventions
describe it, and a timer of the request.

Every connection Django opens gets one execute wrapper (installed on `connection_created`, so
connections of every thread, sync or under ASGI, are covered). Outside a request it only calls
through. Inside one, each query is a CLIENT span named ``SELECT shop`` (the operation and the
database) with ``db.system.name``, ``db.operation.name``, ``db.namespace``,
``server.address``/``server.port`` and ``db.query.text`` (Django's SQL, its parameters apart).
Its timer is tagged ``group=db``, ``op`` (the SQL verb) and ``server`` (the database host), as
any instrumentation's query is; the wide event's ``db.query_count``, ``db.query_ms`` and
``db.duplicate_queries`` are counted from the request's queries (otel_bridge._database). With
psycopg's instrumentation on too, its span sits inside this one and the query counts once.

A connection keeps the span name and attributes of the statements it runs (Django builds the
same SQL text again for every query of a shape: an N+1's statement, a page's few), so a query
it ran before costs a lookup; bounded (`KEPT_STATEMENTS` of up to `KEPT_LENGTH` characters).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_bridge._context import current
from otel_bridge._database import verb
from otel_bridge.timers import new_query_timer

__all__ = ["install"]

# Django's vendor → the conventions' db.system.name.
SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql", "oracle": "oracle.db"}


def install() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, dispatch_uid="otel_bridge.django.db")


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Sent on every (re)connect of the same wrapper object: install once.
    if _record_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_record_query)


def connection_attributes(connection: Any) -> dict[str, Any]:
    """What every query of `connection` carries: the system, the database, the server."""
    vendor = str(getattr(connection, "vendor", "") or "")
    if vendor == "mysql" and getattr(connection, "mysql_is_mariadb", False):
        system = "mariadb"
    else:
        system = SYSTEMS.get(vendor, vendor or "other_sql")
    attributes: dict[str, Any] = {"db.system.name": system}
    settings = getattr(connection, "settings_dict", None) or {}
    name = settings.get("NAME")
    if system != "sqlite" and isinstance(name, str) and name:
        attributes["db.namespace"] = name  # an SQLite file's path is no database name
    host = settings.get("HOST")
    if isinstance(host, str) and host and not host.startswith("/"):  # not a unix socket
        attributes["server.address"] = host
        port = settings.get("PORT")
        if port not in (None, ""):
            try:
                attributes["server.port"] = int(port)
            except (TypeError, ValueError):
                pass
    return attributes


# The statements whose span name and attributes a connection keeps: the same few run in every
# request. Bounded (past that many it starts over); longer statements are made for each query.
KEPT_STATEMENTS = 64
KEPT_LENGTH = 1024
# Where: (the connection's attributes, statement -> (span name, attributes)).
_KEPT = "_otel_bridge_queries"


def query_of(connection: Any, sql: Any) -> tuple[str, Mapping[str, Any]]:
    """The span name and attributes of a query of `sql` on `connection`. Those of a statement
    the connection ran before are the same objects (never changed: a timer's span copies
    them wherever they could change)."""
    state = connection.__dict__.get(_KEPT) if connection is not None else None
    if state is None:
        state = (connection_attributes(connection), {})
        if connection is not None:
            connection.__dict__[_KEPT] = state
    base: dict[str, Any] = state[0]
    known: dict[str, tuple[str, Mapping[str, Any]]] = state[1]
    plain = type(sql) is str  # (a driver's composed SQL object: made each time)
    found = known.get(sql) if plain else None
    if found is not None:
        return found
    attributes = dict(base)
    operation = (verb(sql) or "query").upper()
    attributes["db.operation.name"] = operation
    if isinstance(sql, str):
        attributes["db.query.text"] = sql
    namespace = base.get("db.namespace")
    found = (f"{operation} {namespace}" if namespace else operation, attributes)
    if plain and len(sql) <= KEPT_LENGTH:
        if len(known) >= KEPT_STATEMENTS:
            known.clear()
        known[sql] = found
    return found


def _record_query(execute: Any, sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    builder = current.get()
    if builder is None:
        return execute(sql, params, many, context)
    try:
        # A statement the connection ran before, looked up here (no call for it).
        connection = context.get("connection")
        state = connection.__dict__.get(_KEPT) if connection is not None else None
        found = state[1].get(sql) if state is not None and type(sql) is str else None
        if found is None:
            found = query_of(connection, sql)
    except Exception as exc:  # noqa: BLE001 - the query runs whatever happens here
        builder.bridge.health.error("django.db", exc)
        return execute(sql, params, many, context)
    with new_query_timer(*found):
        return execute(sql, params, many, context)
