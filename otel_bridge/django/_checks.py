"""`manage.py check` messages (stable ids)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def vars_modules(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    from django.core.checks import Warning as CheckWarning

    from otel_bridge.django._discovery import failures

    return [
        CheckWarning(
            f"vars.py of {app} could not be published: {error}",
            hint="Fix the module, or list the app in EXPVAR_SKIP.",
            id="otel_bridge.W001",
        )
        for app, error in failures
    ]


def register() -> None:
    from django.core.checks import register as register_check

    register_check(vars_modules)
