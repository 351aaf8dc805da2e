from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from otel_bridge.django import path


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"hello {name}")


urlpatterns = [
    path("hello/<str:name>", hello, name="hello", healthcheck={"path_params": {"name": "probe"}})
]
