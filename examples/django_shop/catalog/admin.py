from __future__ import annotations

from django.contrib import admin

from examples.django_shop.catalog.models import Author, Book

admin.site.register(Author)
admin.site.register(Book)
