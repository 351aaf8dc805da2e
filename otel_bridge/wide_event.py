"""`otel_bridge.wide_event.set(...)` / `.incr(...)`: fields of the current request's wide event.

Context-variable based: safe in threads (a request's own thread) and asyncio tasks (a request's
own task and the tasks it starts). Outside a request both are no-ops. Bounded: at most 256
fields per request (more are counted and ignored).
"""

from __future__ import annotations

from otel_bridge._context import current as _current

__all__ = ["incr", "set"]

MAX_FIELDS = 256
FieldValue = str | int | float | bool | None


def set(**fields: FieldValue) -> None:
    """Set fields on this request's event (a later value replaces an earlier one)."""
    builder = _current.get()
    if builder is None:
        return
    store = builder.fields
    if store is None:
        store = builder.fields = {}
    for name, value in fields.items():
        if name not in store and len(store) >= MAX_FIELDS:
            builder.bridge.health.drop("wide_event.fields_over_limit")
            continue
        store[name] = value


def incr(name: str, by: int | float = 1) -> None:
    """Add `by` to a numeric field of this request's event (starting from 0)."""
    builder = _current.get()
    if builder is None:
        return
    store = builder.fields
    if store is None:
        store = builder.fields = {}
    previous = store.get(name, 0)
    if name not in store and len(store) >= MAX_FIELDS:
        builder.bridge.health.drop("wide_event.fields_over_limit")
        return
    store[name] = (previous if isinstance(previous, (int, float)) else 0) + by
