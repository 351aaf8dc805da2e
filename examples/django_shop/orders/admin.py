from __future__ import annotations

from django.contrib import admin

from examples.django_shop.orders.models import Order

admin.site.register(Order)
