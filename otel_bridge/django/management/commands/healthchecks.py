"""`manage.py healthchecks`: the Cronitor check monitors of the URL patterns marked as
healthchecks — printed (the default, or `--dry-run`), or put to Cronitor with `--sync`.

Exit status as `otel-bridge healthchecks sync`: 0 done, 1 Cronitor refused or unreachable,
2 a bad declaration or setting. Nothing is sent unless `--sync` is given.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no types
    help = "Cronitor check monitors from the URL patterns marked as healthchecks."

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument(
            "--dry-run", action="store_true", help="print the monitors (the default)"
        )
        action.add_argument("--sync", action="store_true", help="put them to Cronitor")
        parser.add_argument("--format", choices=("json", "yaml"), default="json")
        parser.add_argument(
            "--validate", action="store_true", help="with --sync: Cronitor validates, saves nothing"
        )
        parser.add_argument("--public-url", help="overrides OTEL_EXPORTER_CRONITOR_PUBLIC_URL")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.handlers.wsgi import WSGIHandler

        from otel_bridge.cli import run_healthchecks
        from otel_bridge.config import Settings
        from otel_bridge.django._healthchecks import django_healthchecks
        from otel_bridge.django._settings import django_environ
        from otel_bridge.errors import ConfigError
        from otel_bridge.exporters.cronitor import CronitorSync

        try:
            settings = Settings.from_env(django_environ())
        except ConfigError as exc:
            self.stderr.write(f"healthchecks: {exc}")
            sys.exit(2)
        status = run_healthchecks(
            # The app: Django, as a server runs it.
            CronitorSync(settings, WSGIHandler(), django_healthchecks),
            public_url=options["public_url"],
            dry_run=not options["sync"],
            output_format=options["format"],
            validate=options["validate"],
            prog="manage.py healthchecks",
        )
        if status:
            sys.exit(status)
