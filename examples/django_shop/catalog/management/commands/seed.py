"""`manage.py seed`: the shop's sample data (idempotent)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

from examples.django_shop.catalog.models import Author, Book
from examples.django_shop.orders.models import Order

BOOKS = [
    ("Ada Lovelace", "Notes on the Analytical Engine", 1843),
    ("Ada Lovelace", "Sketch of the Engine", 1842),
    ("Grace Hopper", "A Manual of Operation", 1946),
    ("Grace Hopper", "Compiling Routines", 1953),
    ("Edsger Dijkstra", "Go To Statement Considered Harmful", 1968),
]


class Command(BaseCommand):
    help = "Create the sample authors, books, user and order."

    def handle(self, *args: Any, **options: Any) -> None:
        for author_name, title, year in BOOKS:
            author, _ = Author.objects.get_or_create(name=author_name)
            Book.objects.get_or_create(title=title, year=year, author=author)
        user, created = User.objects.get_or_create(username="ada")
        if created:
            user.set_password("lovelace-1843")
            user.save()
        Order.objects.get_or_create(user=user, book=Book.objects.order_by("id").first())
        self.stdout.write(f"{Book.objects.count()} books, {Order.objects.count()} orders")
