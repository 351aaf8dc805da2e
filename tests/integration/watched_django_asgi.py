"""examples/django_shop under ASGI, every span made by the SDK itself (watching.py)."""

from __future__ import annotations

from examples.django_shop.shop.asgi import application as shop

from .watching import asgi

application = asgi(shop)
