"""examples/shop, its spans counted by who made them (tests/integration/watching.py)."""

from __future__ import annotations

from examples.shop.app import app as shop

from .watching import asgi

app = asgi(shop)
