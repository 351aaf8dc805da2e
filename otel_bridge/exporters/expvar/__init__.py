"""The expvar view: Go-compatible `/debug/vars` for Python apps, and Go-style variables."""

from __future__ import annotations

from otel_bridge.exporters.expvar._vars import (
    ExpVar,
    Float,
    Func,
    Int,
    Map,
    Registry,
    String,
    default_registry,
)
from otel_bridge.exporters.expvar._view import ExpvarEndpoint

# The name ExpvarEndpoint had before (ExpVarView is the Django view, a different thing).
ExpvarView = ExpvarEndpoint

__all__ = [
    "ExpVar",
    "ExpvarEndpoint",
    "ExpvarView",
    "Float",
    "Func",
    "Int",
    "Map",
    "Registry",
    "String",
    "default_registry",
]
