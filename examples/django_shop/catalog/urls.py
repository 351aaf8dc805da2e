from __future__ import annotations

from examples.django_shop.catalog import views
from otel_bridge.django import path, re_path

app_name = "catalog"
urlpatterns = [
    path("books/", views.book_list, name="books", healthcheck={"schedule": "every 5 minutes"}),
    path("books/<int:pk>/", views.book_detail, name="book"),
    re_path(r"^archive/(?P<year>[0-9]{4})/$", views.archive, name="archive"),
]
