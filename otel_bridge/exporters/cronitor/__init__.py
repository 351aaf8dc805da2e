"""The Cronitor view: routes marked as healthchecks become Cronitor `check` monitors."""

from __future__ import annotations

from otel_bridge.exporters.cronitor._derive import healthcheck, monitors_from_app
from otel_bridge.exporters.cronitor._spec import Healthcheck, HealthcheckError
from otel_bridge.exporters.cronitor._sync import CronitorSync

__all__ = ["CronitorSync", "Healthcheck", "HealthcheckError", "healthcheck", "monitors_from_app"]
