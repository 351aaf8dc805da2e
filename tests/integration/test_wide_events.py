from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from .servers import free_port, gunicorn, serve, uvicorn

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_a_burst_gives_exactly_one_event_per_request(server: str, tmp_path: Path) -> None:
    port = free_port()
    events_file = tmp_path / "events.jsonl"
    if server == "uvicorn":
        args = uvicorn("tests.integration.apps:asgi_app", port)
        path = "/users/{n}"
    else:
        args = gunicorn("tests.integration.apps:wsgi_app", port, "--workers", "2", hooks=False)
        path = "/items/{n}"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events_file}",
    }
    with serve(args, port, env), httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        for n in range(150):
            assert c.get(path.format(n=n), headers={"x-request-id": f"r{n}"}).status_code == 200
    # The servers stop gracefully (SIGTERM): the bridge flushes before exiting.
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    assert sorted(e["request.id"] for e in events) == sorted(f"r{n}" for n in range(150))
    assert {e["event"] for e in events} == {"request"}
