from __future__ import annotations

from django.apps import AppConfig

__all__ = ["OtelBridgeConfig"]


class OtelBridgeConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    name = "otel_bridge.django"
    label = "otel_bridge"
    verbose_name = "otel-bridge"

    def ready(self) -> None:
        from django.conf import settings

        from otel_bridge.django import _checks
        from otel_bridge.django._bridges import connect
        from otel_bridge.django._db import install
        from otel_bridge.django._discovery import discover

        install()
        connect()
        discover(getattr(settings, "EXPVAR_SKIP", ()))
        _checks.register()
