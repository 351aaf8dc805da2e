from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404

from examples.django_shop.catalog.models import Book


def book_list(request: HttpRequest) -> JsonResponse:
    # The N+1 pattern, as it ships in real projects: each book's author is one more query
    # (select_related("author") would make it one).
    books = [{"title": book.title, "author": book.author.name} for book in Book.objects.all()]
    return JsonResponse({"books": books})


async def book_detail(request: HttpRequest, pk: int) -> JsonResponse:
    book = await Book.objects.select_related("author").aget(pk=pk)
    return JsonResponse({"title": book.title, "author": book.author.name})


def archive(request: HttpRequest, year: str) -> HttpResponse:
    titles = list(Book.objects.filter(year=int(year)).values_list("title", flat=True))
    return HttpResponse(", ".join(titles))


def book_or_404(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(get_object_or_404(Book, pk=pk).title)
