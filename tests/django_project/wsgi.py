from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_project.settings")

from django.core.wsgi import get_wsgi_application

import otel_bridge
from tests.django_project.db import create_tables
from tests.django_project.views import bridges, collector

application: Any = otel_bridge.instrument_wsgi(
    get_wsgi_application(), record_exporters=[collector], excluded_urls="^/_records$"
)
bridges.append(application.bridge)
create_tables()
