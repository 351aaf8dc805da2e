from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

import otel_bridge
from otel_bridge.record import RequestRecord
from otel_bridge.testing import RecordCollector

collector = RecordCollector()
bridges: list[Any] = []  # the bridge of this process, set by wsgi.py / asgi.py


def summary(record: RequestRecord) -> dict[str, Any]:
    return {
        "route": record.route,
        "path": record.path,
        "status": record.status,
        "error_type": record.error_type,
        "timers": [dict(timer.tags) for timer in record.timers],
        "attributes": {k: v for k, v in record.attributes.items() if k == "http.route"},
    }


def user(request: HttpRequest, uid: int) -> HttpResponse:
    with otel_bridge.timer(group="db", op="select"):
        pass
    return HttpResponse(f"user {uid} {os.getpid()}")


async def item(request: HttpRequest, name: str) -> HttpResponse:
    await asyncio.sleep(0)
    return HttpResponse(f"item {name}")


def archive(request: HttpRequest, year: str) -> HttpResponse:
    return HttpResponse(f"archive {year}")


def notes(request: HttpRequest) -> HttpResponse:
    from tests.django_project.models import Note

    first = Note.objects.filter(pk=1).first()
    again = Note.objects.filter(pk=1).first()  # the same query again: a duplicate
    total = Note.objects.count()
    return HttpResponse(f"{first and first.text} {again and again.text} {total}")


def me(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.user.get_username() or "anonymous")


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@otel_bridge.healthcheck(assertions=["response.code = 200"])
def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong")


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom")


async def fail_async(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0)
    raise LookupError("async boom")


def records(request: HttpRequest) -> HttpResponse:
    bridges[0].force_flush(5_000)
    body = json.dumps([summary(r) for r in collector.records])
    return JsonResponse(json.loads(body), safe=False)


def stuck_in_sync_view(request: HttpRequest, seconds: int) -> HttpResponse:
    """A sync view waiting on something slow (under ASGI, in asgiref's thread)."""
    import time

    time.sleep(seconds)
    return HttpResponse("done")


async def stuck_in_async_view(request: HttpRequest, seconds: int) -> HttpResponse:
    await asyncio.sleep(seconds)
    return HttpResponse("done")
