from __future__ import annotations

from django.conf import settings
from django.db import models

from examples.django_shop.catalog.models import Book


class Order(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    book = models.ForeignKey(Book, on_delete=models.PROTECT)
    created = models.DateTimeField(auto_now_add=True)
