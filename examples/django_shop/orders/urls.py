from __future__ import annotations

from examples.django_shop.orders import views
from otel_bridge.django import path

app_name = "orders"
urlpatterns = [path("", views.mine, name="mine")]
