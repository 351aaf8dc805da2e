from __future__ import annotations

from django.apps import AppConfig

__all__ = ["OtelBridgeConfig"]


class OtelBridgeConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    name = "otel_bridge.django"
    label = "otel_bridge"
    verbose_name = "otel-bridge"

    def ready(self) -> None:
        from otel_bridge.django._db import install

        install()
