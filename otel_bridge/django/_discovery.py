"""django-expvar's `vars.py` convention: every installed app's `vars.py` is imported once (at
startup, not per request), and its `ExpVar` subclasses published to `/debug/vars`.

Differences from django-expvar, on purpose: apps listed by AppConfig path are found too; a
`vars.py` that fails to import is reported (logged, and a `manage.py check` warning,
`otel_bridge.W001`) instead of silently skipped; only classes *defined* in a `vars.py` are
published (one imported from elsewhere would be published twice). Classes subclassing
django-expvar's own `ExpVar` work unchanged, so `vars.py` files need no edit.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any

from otel_bridge.exporters.expvar import ExpVar
from otel_bridge.exporters.expvar._vars import Registry, default_registry

__all__ = ["discover", "failures"]

logger = logging.getLogger("otel_bridge")

# (app, error) of the vars.py modules that failed to import, for the system check.
failures: list[tuple[str, str]] = []


def _is_expvar_class(obj: Any, module: str) -> bool:
    if not inspect.isclass(obj) or obj.__module__ != module or obj.__name__ == "ExpVar":
        return False
    return issubclass(obj, ExpVar) or any(base.__name__ == "ExpVar" for base in obj.__mro__[1:])


def discover(skip: Any = (), registry: Registry | None = None) -> list[str]:
    """Import every installed app's `vars.py` and publish its variables; returns the names
    published. Never raises: failures are logged and kept in `failures`."""
    from django.apps import apps

    registry = registry if registry is not None else default_registry()
    skipped = set(skip or ())
    published: list[str] = []
    for config in apps.get_app_configs():
        if config.name in skipped or config.label in skipped:
            continue
        module_name = f"{config.name}.vars"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # the app has no vars.py
            _failed(config.name, exc)
            continue
        except Exception as exc:  # noqa: BLE001 - a broken vars.py must not stop Django
            _failed(config.name, exc)
            continue
        classes = [
            obj for _, obj in inspect.getmembers(module) if _is_expvar_class(obj, module_name)
        ]
        for cls in classes:
            try:
                var = cls()
                registry.publish_class(var)
                published.append(var.get_name())
            except Exception as exc:  # noqa: BLE001
                _failed(f"{config.name} ({cls.__name__})", exc)
    return published


def _failed(app: str, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}"
    failures.append((app, message))
    logger.warning("otel_bridge: vars.py of %s not published: %s", app, message)
