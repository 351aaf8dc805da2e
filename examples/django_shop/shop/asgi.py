"""`uvicorn examples.django_shop.shop.asgi:application` (from the repository root)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

import otel_bridge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_shop.shop.settings")
PsycopgInstrumentor().instrument(enable_commenter=False)  # the driver's spans too
application = otel_bridge.instrument(get_asgi_application())
