"""The request being recorded (`current`, a contextvar defined with `RequestBuilder`), and
the zero-code fallback for tags and fields set outside one."""

from __future__ import annotations

from otel_bridge.builder import current

__all__ = ["current", "mode", "span_attribute_fallback"]


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
