from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

import otel_bridge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")
application = otel_bridge.instrument(get_asgi_application())
