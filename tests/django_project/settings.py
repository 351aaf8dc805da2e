"""A minimal Django project served by real gunicorn (WSGI) and uvicorn (ASGI) in the tests."""

from __future__ import annotations

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS = ["otel_bridge.django"]
MIDDLEWARE = ["otel_bridge.django.middleware.RouteMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True
