from __future__ import annotations

from django.db import models


class Note(models.Model):  # type: ignore[misc]
    text = models.CharField(max_length=100)

    class Meta:
        app_label = "django_project"
