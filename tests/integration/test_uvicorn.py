from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from .servers import free_port, raw_request, serve, stop, uvicorn, wait_for

pytestmark = pytest.mark.integration


def test_uvicorn_serves_every_request_as_span_and_record() -> None:
    port = free_port()
    args = uvicorn("tests.integration.apps:asgi_app", port, "--lifespan", "on")
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "uvicorn-it"}
    with serve(args, port, env) as server:
        base = f"http://127.0.0.1:{port}"
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        with httpx.Client(base_url=base, timeout=10) as c:
            response = c.get(
                "/users/5", headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
            )
            assert response.text.startswith("user 5")
            assert c.get("/stream").content == b"0123456789" * 3
            assert c.get("/nowhere").status_code == 404
            # uvicorn closes a connection after an app exception (bare apps too): ask for that.
            assert c.get("/fail", headers={"connection": "close"}).status_code == 500
        # Undecodable and percent-encoded bytes in the path, and a 64 kB header.
        reply = raw_request(
            port,
            b"GET /caf%C3%A9/%FF HTTP/1.1\r\nHost: x\r\nX-Big: "
            + b"v" * 60_000
            + b"\r\nConnection: close\r\n\r\n",
        )
        assert reply.startswith(b"HTTP/1.1 404")
        with httpx.Client(base_url=base, timeout=10) as c:
            records = c.get("/_records").json()["records"]
        out, err = stop(server)

    by_path = {record["path"]: record for record in records}
    assert set(by_path) == {"/users/5", "/stream", "/fail", "/nowhere", "/café/\ufffd"}
    user = by_path["/users/5"]
    assert (user["route"], user["status"], user["trace_id"]) == ("/users/{uid}", 200, trace_id)
    assert user["timers"] == [{"group": "db", "op": "select"}]
    streamed = by_path["/stream"]
    assert (streamed["bytes"], streamed["completed"]) == (30, True)
    assert streamed["duration_ns"] >= 30_000_000
    assert [t["chunk"] for t in streamed["timers"]] == ["0", "1", "2"]
    failed = by_path["/fail"]
    assert (failed["status"], failed["error_type"]) == (500, "RuntimeError")
    assert by_path["/nowhere"]["route"] is None

    # The console exporter printed one server span per request when the server shut down
    # (lifespan shutdown flushes the bridge, which ends the spans).
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    server_spans = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert sorted(s["name"] for s in server_spans) == sorted(
        ["GET /users/{uid}", "GET /stream", "GET /fail", "GET", "GET"]
    )
    assert all(s["resource"]["attributes"]["service.name"] == "uvicorn-it" for s in spans)
    assert "Traceback" in err and "RuntimeError: boom" in err, "uvicorn still logs app errors"


def _json_objects(text: str) -> list[str]:
    """Split the console exporter's output (pretty-printed JSON objects one after another)."""
    objects, depth, start = [], 0, None
    for index, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = index
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0 and start is not None:
                objects.append(text[start : index + 1])
    return objects


def test_a_client_leaving_a_stream_is_marked_in_its_event(tmp_path: Path) -> None:
    # A real client reads the start of examples/shop's event stream and closes the socket.
    events = tmp_path / "events.jsonl"
    port = free_port()
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        # The shop's SQLite database in the test's directory, not left in /tmp.
        "SHOP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite3'}",
    }
    with serve(uvicorn("examples.shop.app:app", port), port, env):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /api/v1/feed HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200 OK")
            time.sleep(0.2)
        assert wait_for(lambda: events.exists() and events.read_text().strip() != "", 10)
    [event] = [json.loads(line) for line in events.read_text().splitlines()]
    assert event["http.route"] == "/api/v1/feed"
    assert event["http.response.status_code"] == 200
    assert event["http.response.completed"] is False
    assert event["error.type"] == "response_incomplete"
    assert event["duration_ms"] < 4_000, "ended when the client left, not after 100 events"
