from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):  # type: ignore[misc]
    name = "tests.django_project"
    label = "django_project"
    default_auto_field = "django.db.models.AutoField"
