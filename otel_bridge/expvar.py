"""Go-style variables for `/debug/vars`, at a short path::

    from otel_bridge import expvar

    orders = expvar.Int("orders")            # orders.add(1)
    expvar.Func("queue_length", lambda: len(queue))

The same objects as `otel_bridge.exporters.expvar` (the view's package).
"""

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

__all__ = ["ExpVar", "Float", "Func", "Int", "Map", "Registry", "String", "default_registry"]
