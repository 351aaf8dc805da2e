"""`OTEL_BRIDGE = {...}` in Django settings: the same variables as the environment, by the
same names, taking precedence over it.

    OTEL_BRIDGE = {"OTEL_SERVICE_NAME": "shop", "OTEL_BRIDGE_EXPORTERS": ["expvar", "pinba"]}

Values may be strings as the environment spells them, or Python values: booleans become
``true``/``false``, lists and tuples comma-separated. Read when the handler is wrapped; `manage.py
check` validates it (`otel_bridge.E001` unknown name, `otel_bridge.E002` invalid value).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["django_environ", "django_handler", "is_django_handler"]


def django_handler(app: Any) -> Any:
    """The Django WSGIHandler / ASGIHandler `app` is or wraps (through `.app`), else None.
    Imports nothing."""
    for _ in range(16):
        if type(app).__module__.startswith("django.core.handlers"):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def is_django_handler(app: Any) -> bool:
    return django_handler(app) is not None


def _spelled(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(item) for item in value)
    return str(value)


def overrides() -> dict[str, str]:
    """`settings.OTEL_BRIDGE` spelled as environment values (empty when unset)."""
    from django.conf import settings

    configured = getattr(settings, "OTEL_BRIDGE", None) or {}
    if not isinstance(configured, Mapping):
        return {}
    return {str(name): _spelled(value) for name, value in configured.items()}


def django_environ() -> dict[str, str]:
    """The environment with `settings.OTEL_BRIDGE` on top; Django's ``ALLOWED_HOSTS`` (as
    Django applies it) for ``OTEL_BRIDGE_ALLOWED_HOSTS`` when neither sets that."""
    environ = {**os.environ, **overrides()}
    if "OTEL_BRIDGE_ALLOWED_HOSTS" not in environ:
        hosts = _allowed_hosts()
        if hosts:
            environ["OTEL_BRIDGE_ALLOWED_HOSTS"] = ",".join(hosts)
    return environ


def _allowed_hosts() -> list[str]:
    from django.conf import settings

    from otel_bridge.config.parsers import _HOST_PATTERN

    hosts = list(getattr(settings, "ALLOWED_HOSTS", None) or ())
    if not hosts and getattr(settings, "DEBUG", False):
        hosts = [".localhost", "127.0.0.1", "[::1]"]  # what Django allows then
    # Entries Django would never match (a port, a typo) are left out, not an error of ours.
    spelled = [str(host).lower() for host in hosts]
    return [host for host in spelled if _HOST_PATTERN.fullmatch(host)]
