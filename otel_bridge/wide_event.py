"""`otel_bridge.wide_event.set(...)` / `.incr(...)`: fields of the current request's wide event.

Context-variable based: safe in threads (a request's own thread) and asyncio tasks (a request's
own task and the tasks it starts). Outside a request both are no-ops. Bounded: at most 256
fields per request (more are counted and ignored).
"""

from __future__ import annotations

from otel_bridge._context import current as _current
from otel_bridge._context import mode as _mode
from otel_bridge._context import span_attribute_fallback

__all__ = ["incr", "set"]

MAX_FIELDS = 256
FieldValue = str | int | float | bool | None


def set(**fields: FieldValue) -> None:
    """Set fields on this request's event (a later value replaces an earlier one)."""
    builder = _current.get()
    if builder is None:
        if _mode.zerocode:
            span_attribute_fallback("otel_bridge.field.", dict(fields))
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
        if _mode.zerocode:
            _incr_span_attribute(name, by)
        return
    store = builder.fields
    if store is None:
        store = builder.fields = {}
    previous = store.get(name, 0)
    if name not in store and len(store) >= MAX_FIELDS:
        builder.bridge.health.drop("wide_event.fields_over_limit")
        return
    store[name] = (previous if isinstance(previous, (int, float)) else 0) + by


def _incr_span_attribute(name: str, by: int | float) -> None:
    from opentelemetry import trace

    span = trace.get_current_span()
    previous = (getattr(span, "attributes", None) or {}).get("otel_bridge.field." + name, 0)
    if isinstance(previous, bool) or not isinstance(previous, (int, float)):
        previous = 0
    span_attribute_fallback("otel_bridge.field.", {name: previous + by})
