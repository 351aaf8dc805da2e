"""The contextvar that holds the request being recorded (a `RequestBuilder`)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_bridge.bridge import RequestBuilder

current: ContextVar[RequestBuilder | None] = ContextVar("otel_bridge.request", default=None)


class _Mode:
    # Set once a zero-code exporter exists (otel_bridge.zerocode): outside a wrapper's request,
    # tags and wide-event fields then go to the current span's attributes.
    zerocode = False


mode = _Mode()


def span_attribute_fallback(prefix: str, values: dict[str, object]) -> None:
    """Zero-code mode: keep `values` as attributes of the current span (``prefix`` + name).
    Never raises."""
    try:
        from opentelemetry import trace

        span = trace.get_current_span()
        if not span.is_recording():
            return
        attributes: dict[str, str | int | float | bool] = {}
        for name, value in values.items():
            if isinstance(value, (str, bool, int, float)):
                attributes[prefix + name] = value
            elif value is None:
                attributes[prefix + name] = ""
            else:
                attributes[prefix + name] = str(value)
        span.set_attributes(attributes)
    except Exception:  # noqa: BLE001 - a tag must never break the request
        pass
