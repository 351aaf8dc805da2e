from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

import otel_bridge

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")
application = otel_bridge.instrument_wsgi(get_wsgi_application())
