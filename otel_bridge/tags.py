"""`otel_bridge.tag(**tags)`: tags of the current request (Pinba request tags)."""

from __future__ import annotations

from otel_bridge._context import current as _current
from otel_bridge._context import mode as _mode
from otel_bridge._context import span_attribute_fallback
from otel_bridge._strings import php_string

__all__ = ["tag"]

# Bounded: a loop that tags every iteration must not grow a record without limit.
MAX_TAGS = 64


def tag(**tags: object) -> None:
    """Set tags on the request being served (no-op outside a request).

    Args:
        **tags: names and values; values are turned into strings as PHP would (`True` → "1",
            `None` → "", 1.5 → "1.5"). A later value for the same name replaces the earlier.

    Never raises; beyond 64 tags per request further names are ignored (and counted).
    """
    builder = _current.get()
    if builder is None:
        if _mode.zerocode:
            span_attribute_fallback(
                "otel_bridge.tag.", {name: php_string(value) for name, value in tags.items()}
            )
        return
    if builder.tags is None:
        builder.tags = {}
    current = builder.tags
    for name, value in tags.items():
        if name not in current and len(current) >= MAX_TAGS:
            builder.bridge.health.drop("tags_over_limit")
            continue
        current[name] = php_string(value)
