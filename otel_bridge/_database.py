"""Database client spans, whichever instrumentation made them: one query is one timer, and
its tags mean the same in every view.

- A span is a database query when it has ``db.system.name`` (or the older ``db.system``).
- Its timer's tags are ``group=db``, ``op`` (the SQL verb: ``db.operation.name``, else the
  statement's or the span name's first word; lowercase, bounded) and ``server``
  (``server.address``) when known. So psycopg's, SQLAlchemy's, asyncpg's, sqlite3's and
  Django's own query spans give the same tags for the same query.
- Instrumentations nest: SQLAlchemy's span holds the driver's (psycopg's), Django's holds the
  driver's. A database span whose parent is a database span of the same request is the same
  query seen twice: **the outer one wins** (the one closest to the app's code, covering the
  whole call), the inner one is left out of the timers and the counts.
- `QueryCounts` gives the wide event's ``db.query_count``, ``db.query_ms`` and
  ``db.duplicate_queries`` from the queries' spans (each counted once: the outermost of nested
  ones; an app's ``timer(group="db")`` is a timer, not a query): a query whose statement
  (parameters apart: the N+1 shape) already ran in this request is a duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "COUNT_SLOTS",
    "FIGURES",
    "MAX_STATEMENTS",
    "QueryCounts",
    "db_tags",
    "held_by_open_query",
    "is_database",
    "statement_of",
    "verb",
]

STATEMENT_KEYS = ("db.query.text", "db.statement")
# Distinct statements remembered per request for duplicates.
MAX_STATEMENTS = 512
_TAGS: dict[tuple[str, str | None], tuple[tuple[str, str], ...]] = {}
_TAGS_KEPT = 4096


def is_database(attributes: Mapping[str, Any]) -> bool:
    return "db.system.name" in attributes or "db.system" in attributes


def statement_of(attributes: Mapping[str, Any]) -> str | None:
    for key in STATEMENT_KEYS:
        value = attributes.get(key)
        if isinstance(value, str):
            return value
    return None


_VERB = re.compile(r"\s*\(*\s*([A-Za-z]{1,16})(?![A-Za-z])")


def verb(text: object) -> str | None:
    """The first word of a statement or span name, lowercase, when it is a plain word of at
    most 16 letters (``SELECT``, ``BEGIN;``, ``(select …``, ``findAndModify``), else None."""
    if not isinstance(text, str):
        return None
    found = _VERB.match(text)
    return found.group(1).lower() if found is not None else None


def db_tags(name: str, attributes: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The timer tags of a database span named `name` with `attributes`."""
    operation = attributes.get("db.operation.name") or attributes.get("db.operation")
    op = verb(operation) or verb(statement_of(attributes)) or verb(name) or "query"
    server = attributes.get("server.address") or attributes.get("net.peer.name")
    server_text = str(server) if server is not None else None
    key = (op, server_text)
    found = _TAGS.get(key)
    if found is None:
        found = (("group", "db"), ("op", op))
        if server_text is not None:
            found += (("server", server_text),)
        if len(_TAGS) < _TAGS_KEPT:
            _TAGS[key] = found
    return found


def held_by_open_query(
    open_spans: Mapping[int, Any] | None, parent_id: int, scope: str, span_id: int = 0
) -> bool:
    """Whether a query's span (of instrumentation `scope`, child of `parent_id`) ends inside a
    database span still open in its request: its parent, or another instrumentation's span
    around it (SQLAlchemy's around the driver's). For the queries past OTEL_BRIDGE_MAX_TIMERS,
    counted without their timers: the same query is counted once."""
    for other_id, other in (open_spans or {}).items():
        if other_id == span_id:
            continue
        attributes = getattr(other, "start_attributes", None)
        if attributes is None:
            attributes = getattr(getattr(other, "_attributes", None), "_dict", None) or {}
        if not is_database(attributes):
            continue
        if other_id == parent_id:
            return True
        found = getattr(other, "instrumentation_scope", None)
        other_scope = found.name if found is not None else "otel_bridge.timer"  # a TimerSpan
        if other_scope != scope:
            return True
    return False


# The request's database figures as `QueryCounts.fields` names them, in its order.
FIGURES = (".db.query_count", ".db.query_ms", ".db.duplicate_queries")


# QueryCounts' slots, in the order the C fold (otel_bridge._speedups) sets them.
COUNT_SLOTS = ("count", "duplicates", "nanoseconds", "seen")


class QueryCounts:
    """The database figures of one request, from its kept query timers (made by the C fold
    too, which sets the `COUNT_SLOTS` as `add` does)."""

    __slots__ = COUNT_SLOTS

    def __init__(self) -> None:
        self.count = 0
        self.nanoseconds = 0
        self.duplicates = 0
        self.seen: set[int] = set()

    def add(self, duration_ns: int, statement: str | None) -> None:
        self.count += 1
        self.nanoseconds += duration_ns
        if statement is None:
            return
        key = hash(statement)
        if key in self.seen:
            self.duplicates += 1
        elif len(self.seen) < MAX_STATEMENTS:
            self.seen.add(key)

    def fields(self, dropped: int = 0, dropped_ns: int = 0) -> dict[str, int | float]:
        """As the wide event names them (a leading "." keeps them out of ``app.``); the
        queries past ``OTEL_BRIDGE_MAX_TIMERS`` are counted too."""
        count, milliseconds, duplicates = FIGURES
        return {
            count: self.count + dropped,
            milliseconds: round((self.nanoseconds + dropped_ns) / 1e6, 3),
            duplicates: self.duplicates,
        }
