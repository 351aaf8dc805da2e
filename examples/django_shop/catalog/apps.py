from __future__ import annotations

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "examples.django_shop.catalog"
    label = "catalog"
