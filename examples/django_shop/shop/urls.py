from __future__ import annotations

from django.contrib import admin
from django.urls import include

from examples.django_shop.shop import views
from otel_bridge.django import path

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health", healthcheck={"schedule": "every 1 minute"}),
    path("catalog/", include("examples.django_shop.catalog.urls")),
    # The same URLconf again, under a namespace of its own (staff links).
    path("staff/catalog/", include("examples.django_shop.catalog.urls", namespace="staff")),
    path("orders/", include("examples.django_shop.orders.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
