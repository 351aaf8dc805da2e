"""Settings of the shop: two apps with migrations, the admin, a login flow, on PostgreSQL.

The database comes from SHOP_DB_HOST, SHOP_DB_PORT, SHOP_DB_USER, SHOP_DB_PASSWORD and
SHOP_DB_NAME; without SHOP_DB_HOST, an SQLite file (enough for `manage.py check` and
`manage.py healthchecks`).
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "examples-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", ".shop.test"]
ROOT_URLCONF = "examples.django_shop.shop.urls"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "otel_bridge.django",
    "examples.django_shop.catalog",
    "examples.django_shop.orders",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
if os.environ.get("SHOP_DB_HOST"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["SHOP_DB_HOST"],
            "PORT": os.environ.get("SHOP_DB_PORT", "5432"),
            "USER": os.environ.get("SHOP_DB_USER", "shop"),
            "PASSWORD": os.environ.get("SHOP_DB_PASSWORD", ""),
            "NAME": os.environ.get("SHOP_DB_NAME", "shop"),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SHOP_SQLITE", str(HERE / "shop.sqlite3")),
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/orders/"
