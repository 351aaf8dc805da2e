from __future__ import annotations

from django.urls import path, re_path

from tests.django_project import views

urlpatterns = [
    path("users/<int:uid>/", views.user),
    path("items/<slug:name>", views.item),
    re_path(r"^archive/(?P<year>[0-9]{4})/$", views.archive),
    path("fail", views.fail),
    path("notes", views.notes),
    path("_records", views.records),
]
