"""Every app under examples/ served as its docstring says, by a real server: /debug/vars
answers and a request becomes a wide event with the framework's route template."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from .servers import free_port, gunicorn, serve, uvicorn

pytestmark = pytest.mark.integration

EXAMPLES = {
    "fastapi": ("uvicorn", "examples.fastapi_app:app", "/hello/{name}"),
    "starlette": ("uvicorn", "examples.starlette_app:app", "/hello/{name}"),
    "flask": ("gunicorn", "examples.flask_app:app", "/hello/<name>"),
    "wsgi": ("gunicorn", "examples.wsgi_app:app", None),
    "django-wsgi": ("gunicorn", "examples.django_site.wsgi:application", "/hello/<str:name>"),
    "django-asgi": ("uvicorn", "examples.django_site.asgi:application", "/hello/<str:name>"),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_serves_debug_vars_and_writes_a_wide_event(name: str, tmp_path: Path) -> None:
    server, target, route = EXAMPLES[name]
    port = free_port()
    args = (
        uvicorn(target, port)
        if server == "uvicorn"
        else gunicorn(target, port, "--workers", "1", hooks=False)
    )
    events = tmp_path / "events.jsonl"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "expvar,wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        "OTEL_SERVICE_NAME": f"example-{name}",
    }
    with serve(args, port, env), httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        response = client.get("/hello/ada")
        assert response.status_code == 200
        assert "ada" in response.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            document = client.get("/debug/vars").json()
            if document["requests"]["total"]["count"] >= 1 and events.exists():
                break
            time.sleep(0.05)
    assert "memstats" in document and "cmdline" in document
    assert document["requests"]["total"]["count"] == 1
    (event,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert (event["url.path"], event.get("http.route")) == ("/hello/ada", route)
    assert event["service.name"] == f"example-{name}"
    assert event["http.response.status_code"] == 200
