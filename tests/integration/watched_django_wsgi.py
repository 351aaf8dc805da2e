"""examples/django_shop under WSGI, its spans counted by who made them (watching.py)."""

from __future__ import annotations

from examples.django_shop.shop.wsgi import application as shop

from .watching import wsgi

application = wsgi(shop)
