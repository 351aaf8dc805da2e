"""Timeout events from inside the worker, before (or instead of) the server's own timeout."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from .servers import free_port, gunicorn, serve, uvicorn

pytestmark = pytest.mark.integration


def events_of(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(path: Path, count: int, seconds: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        events = events_of(path)
        if len(events) >= count:
            return events
        time.sleep(0.1)
    return events_of(path)


@pytest.mark.parametrize(
    ("worker_class", "sleep", "killed"),
    [("sync", 6, True), ("gthread", 3, False), ("uvicorn_worker.UvicornWorker", 3, False)],
)
def test_gunicorn_request_past_the_timeout_gets_exactly_one_timeout_event(
    worker_class: str, sleep: int, killed: bool, tmp_path: Path
) -> None:
    port = free_port()
    events = tmp_path / "events.jsonl"
    target = "asgi_app" if "Uvicorn" in worker_class else "wsgi_app"
    args = gunicorn(
        f"tests.integration.apps:{target}",
        port,
        "--workers",
        "1",
        "-k",
        worker_class,
        "--timeout",
        "2",
        "--graceful-timeout",
        "2",
    )
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
    }
    with serve(args, port, env):
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/sleep/{sleep}",
                headers={"x-request-id": "stuck-1"},
                timeout=sleep + 5,
            )
            completed = response.status_code == 200
        except httpx.HTTPError:
            completed = False
        assert completed is not killed
        # Another request afterwards, served by the same or a fresh worker.
        assert httpx.get(f"http://127.0.0.1:{port}/sleep/0", timeout=10).status_code == 200
        time.sleep(0.5)
    found = [e for e in events_of(events) if e.get("request.id") == "stuck-1"]
    assert len(found) == 1, found
    [event] = found
    assert event["event"] == "timeout"
    assert 900 <= float(event["duration_ms"]) < 2000  # type: ignore[arg-type]
    assert "sleep" in str(event["stack"])  # the stack names what it was waiting in
    assert "_sleepy_wsgi" in str(event["stack"]) or "sleepy" in str(event["stack"])
    assert event["app.step"] == "waiting on the mainframe"
    [span] = json.loads(str(event["open_spans"]))
    assert span["name"] == "mainframe call"


def test_uvicorn_with_an_explicit_deadline(tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "events.jsonl"
    args = uvicorn("tests.integration.apps:asgi_app", port)
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_TIMEOUT": "0.5",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
    }
    with serve(args, port, env):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            assert c.get("/sleep/1.5", headers={"x-request-id": "slow"}).text == "woke up"
            for n in range(5):
                c.get(f"/users/{n}", headers={"x-request-id": f"fast-{n}"})
        wait_for(events, 6, 5)
    ids = sorted(str(e["request.id"]) for e in events_of(events))
    assert ids == ["fast-0", "fast-1", "fast-2", "fast-3", "fast-4", "slow"]
    [slow] = [e for e in events_of(events) if e["request.id"] == "slow"]
    assert slow["event"] == "timeout" and "sleepy" in str(slow["stack"])


def test_events_carry_sibling_data_and_a_killed_worker_is_reported(tmp_path: Path) -> None:
    port = free_port()
    events = tmp_path / "events.jsonl"
    args = gunicorn("tests.integration.apps:wsgi_app", port, "--workers", "2")
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events,expvar",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
    }
    with serve(args, port, env):
        base = f"http://127.0.0.1:{port}"
        for n in range(20):
            httpx.get(f"{base}/items/{n}", headers={"connection": "close"}, timeout=10)
        time.sleep(1.5)  # the master's monitor samples once a second
        workers = httpx.get(base + "/debug/vars", timeout=10).json()["server"]["workers"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{base}/die", headers={"x-request-id": "doomed"}, timeout=10)
        found = wait_for(events, 21, 10)
    ordinary = [e for e in found if e["event"] == "request"]
    assert len(ordinary) == 20
    assert {e["server.workers"] for e in ordinary} == {2}
    assert {e["worker.slot"] for e in ordinary} <= {0, 1, 2, 3}
    assert all("server.listen_backlog" in e for e in ordinary)
    assert all(w["rss_bytes"] > 0 for w in workers), "the master's monitor sampled RSS"
    [killed] = [e for e in found if e["event"] == "worker_killed"]
    assert (killed["request.id"], killed["url.path"]) == ("doomed", "/die")
