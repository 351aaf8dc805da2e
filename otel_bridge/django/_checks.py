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


def otel_bridge_setting(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """`OTEL_BRIDGE`: known names (E001), values the environment would accept (E002)."""
    from django.conf import settings
    from django.core.checks import Error

    from otel_bridge.config import VARIABLES, Settings
    from otel_bridge.django._settings import overrides
    from otel_bridge.errors import ConfigError

    configured = getattr(settings, "OTEL_BRIDGE", None)
    if configured is None:
        return []
    if not isinstance(configured, dict):
        return [
            Error(
                f"OTEL_BRIDGE must be a dict of variable names to values, not "
                f"{type(configured).__name__}",
                id="otel_bridge.E001",
            )
        ]
    known = {variable.env for variable in VARIABLES}
    errors = [
        Error(
            f"OTEL_BRIDGE[{name!r}]: not a variable otel_bridge reads",
            hint="The names are the environment variables of docs/configuration.md.",
            id="otel_bridge.E001",
        )
        for name in sorted(set(map(str, configured)) - known)
    ]
    for name, value in sorted(overrides().items()):
        if name not in known:
            continue
        try:
            Settings.from_env({name: value})
        except ConfigError as exc:
            errors.append(Error(f"OTEL_BRIDGE: {exc}", id="otel_bridge.E002"))
    return errors


def register() -> None:
    from django.core.checks import register as register_check

    register_check(vars_modules)
    register_check(otel_bridge_setting)
