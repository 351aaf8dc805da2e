"""The smallest Django project with otel_bridge: the app in INSTALLED_APPS and a wrapped
handler (wsgi.py / asgi.py). Serve it from the repository root with
`gunicorn examples.django_site.wsgi:application` or `uvicorn examples.django_site.asgi:application`.
"""

from __future__ import annotations

SECRET_KEY = "example-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_site.urls"
INSTALLED_APPS = ["otel_bridge.django"]
MIDDLEWARE: list[str] = []  # the wrapped handler records; add OtelBridgeMiddleware for tests
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
