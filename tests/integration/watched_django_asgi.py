"""examples/django_shop under ASGI, its spans counted by who made them (watching.py)."""

from __future__ import annotations

from examples.django_shop.shop.asgi import application as shop

from .watching import asgi

application = asgi(shop)
