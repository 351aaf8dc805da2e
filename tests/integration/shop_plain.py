"""examples/django_shop served with Django's query spans alone (no driver instrumentation):
every query is a timer of its own, in a row, the layout most Django projects have."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application

import otel_bridge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.shop.settings")
wsgi = otel_bridge.instrument_wsgi(get_wsgi_application())
asgi = otel_bridge.instrument(get_asgi_application())
