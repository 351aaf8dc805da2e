"""examples/django_shop served with Django's query spans alone (no driver instrumentation):
every query is a timer of its own, in a row, the layout most Django projects have.

`shop_plain:wsgi` for a WSGI server, `shop_plain:asgi` for an ASGI one: each made when the
server asks for it, so that a server process holds one application and its one bridge."""

from __future__ import annotations

import os
from typing import Any

import otel_bridge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.shop.settings")
_made: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    if name not in ("wsgi", "asgi"):
        raise AttributeError(name)
    if name not in _made:
        if name == "wsgi":
            from django.core.wsgi import get_wsgi_application

            _made[name] = otel_bridge.instrument_wsgi(get_wsgi_application())
        else:
            from django.core.asgi import get_asgi_application

            _made[name] = otel_bridge.instrument(get_asgi_application())
    return _made[name]
