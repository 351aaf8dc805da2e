"""A minimal Django project served by real gunicorn (WSGI) and uvicorn (ASGI) in the tests."""

from __future__ import annotations

import json
import os

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.django_project.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "otel_bridge.django",
    "tests.django_project.apps.ProjectConfig",
    "tests.django_project.brokenapp",
]
# django-expvar's setting: apps whose vars.py is not imported.
EXPVAR_SKIP = [
    app for app in os.environ.get("EXPVAR_SKIP", "tests.django_project.brokenapp").split(",") if app
]
# The wrapped handler records routes by itself; OtelBridgeMiddleware is for the test client and
# handlers wrapped in something else first (the tests run both ways).
MIDDLEWARE = [
    *(
        ["otel_bridge.django.middleware.OtelBridgeMiddleware"]
        if os.environ.get("ROUTE_MIDDLEWARE")
        else []
    ),
    # APPEND_SLASH's redirects and ALLOWED_HOSTS's 400s, as in every real project.
    "django.middleware.common.CommonMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.django_project.auth.HeaderUserMiddleware",
]
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.RemoteUserBackend"]
# A file, so every thread (and the ASGI handler's sync thread) sees the same tables.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_TEST_DB") or ":memory:",
    }
}
USE_TZ = True

# otel_bridge's variables from Django settings (over the environment); the tests set it.
OTEL_BRIDGE = json.loads(os.environ.get("DJANGO_OTEL_BRIDGE", "{}"))
