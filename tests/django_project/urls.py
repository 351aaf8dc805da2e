from __future__ import annotations

from django.urls import include
from django.urls import path as django_path

from otel_bridge.django import path, re_path
from otel_bridge.django.views import ExpVarView
from tests.django_project import views

api = [
    path(
        "users/<int:uid>/",
        views.user,
        name="api-user",
        healthcheck={"path_params": {"uid": 1}, "schedule": "every 5 minutes"},
    ),
]

urlpatterns = [
    django_path("users/<int:uid>/", views.user),
    django_path("items/<slug:name>", views.item),
    re_path(
        r"^archive/(?P<year>[0-9]{4})/$",
        views.archive,
        name="archive",
        healthcheck={"path_params": {"year": 2024}},
    ),
    path("health/", views.health, name="health", healthcheck=True),
    path("ping", views.ping),  # marked by its decorator
    path("api/", include(api)),
    path("stuck/<int:seconds>", views.stuck_in_sync_view),
    path("stuck-async/<int:seconds>", views.stuck_in_async_view),
    path("fail", views.fail),
    path("fail-async", views.fail_async),
    path("notes", views.notes),
    path("me", views.me, name="me"),
    path("_records", views.records),
    path("ops/vars", ExpVarView.as_view(), name="expvar"),
]
