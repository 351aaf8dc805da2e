"""Exceptions raised by otel_bridge.

    ValueError
     └── ConfigError   an environment variable or keyword argument has an invalid value

Nothing else is raised into the host application: exporter failures are counted in the
`bridge` section of `/debug/vars` and logged once per kind.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value is invalid.

    The message names the variable (or keyword), the value received and the form expected,
    e.g. ``OTEL_BRIDGE_QUEUE_SIZE='-1': expected an integer from 1 to 1000000``.
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        super().__init__(f"{name}={value!r}: expected {expected}")
