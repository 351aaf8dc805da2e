"""Database queries of a Django request: a timer each, and counts for the wide event.

Every connection Django opens gets one execute wrapper (installed on `connection_created`, so
connections of every thread, sync or under ASGI, are covered). Outside a request it only calls
through. Inside one, each query becomes a timer tagged ``group=db``, ``op`` (the SQL verb) and
``server`` (the connection alias), and the wide event gets ``db.query_count``,
``db.query_ms`` and ``db.duplicate_queries`` (the same SQL with the same parameters run again
in this request — the N+1 pattern).
"""

from __future__ import annotations

import time
from typing import Any

from otel_bridge._context import current
from otel_bridge.timers import timer

__all__ = ["install"]

# Distinct (sql, params) pairs remembered per request for duplicate detection.
MAX_SEEN = 512
# Integration fields: a leading "." keeps them out of the wide event's `app.` namespace.
COUNT, MILLISECONDS, DUPLICATES = ".db.query_count", ".db.query_ms", ".db.duplicate_queries"


def install() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, dispatch_uid="otel_bridge.django.db")


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Sent on every (re)connect of the same wrapper object: install once.
    if _record_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_record_query)


def _verb(sql: object) -> str:
    if not isinstance(sql, str):
        return "query"
    head = sql.lstrip()[:16].split(None, 1)
    return head[0].lower() if head else "query"


def _record_query(execute: Any, sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    builder = current.get()
    if builder is None:
        return execute(sql, params, many, context)
    alias = getattr(context.get("connection"), "alias", "default")
    start = time.perf_counter_ns()
    try:
        with timer(group="db", op=_verb(sql), server=alias):
            return execute(sql, params, many, context)
    finally:
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        try:
            fields = builder.fields
            if fields is None:
                fields = builder.fields = {}
            _add(fields, COUNT, 1)
            _add_ms(fields, MILLISECONDS, elapsed_ms)
            seen = builder.db_seen
            if seen is None:
                seen = builder.db_seen = set()
            key = hash((sql, repr(params))) if not many else None  # executemany: skip
            if key is None:
                pass
            elif key in seen:
                _add(fields, DUPLICATES, 1)
            elif len(seen) < MAX_SEEN:
                seen.add(key)
        except Exception as exc:  # noqa: BLE001 - the query's result matters, not our count
            builder.bridge.health.error("django.db", exc)


def _add(fields: dict[str, object], name: str, amount: int) -> None:
    previous = fields.get(name, 0)
    fields[name] = (previous if isinstance(previous, int) else 0) + amount


def _add_ms(fields: dict[str, object], name: str, amount: float) -> None:
    previous = fields.get(name, 0.0)
    fields[name] = round((previous if isinstance(previous, (int, float)) else 0.0) + amount, 3)
