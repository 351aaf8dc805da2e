"""WebSocket connections under a real uvicorn, read by a real client: one record each, seen by
every view as users expect (a wide event with close code and message counts, per-route counts
in /debug/vars, a Pinba packet, the handshake's span), and no HTTP latency polluted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .pinba_reader import PinbaReader
from .servers import free_port, lines_written, serve, stop, uvicorn, wait_for
from .test_uvicorn import _json_objects

pytestmark = pytest.mark.integration


def test_a_websocket_connection_is_one_record_in_every_view(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    pinba = PinbaReader()
    port = free_port()
    env = {
        "OTEL_BRIDGE_EXPORTERS": "expvar,pinba,wide_events",
        "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba.port}",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
        # The shop's SQLite database in the test's directory, not left in /tmp.
        "SHOP_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shop.sqlite3'}",
        "OTEL_EXPORTER_WIDE_EVENTS_TIMEOUT": "1",  # shorter than the connection: no timeout
        "OTEL_TRACES_EXPORTER": "console",
    }
    try:
        with serve(uvicorn("examples.shop.app:app", port), port, env) as server:
            url = f"ws://127.0.0.1:{port}/ws/orders"
            with connect(url + "?token=t", open_timeout=10) as websocket:
                replies = []
                for order in ("o-1", "o-2", "o-3"):
                    websocket.send(order)
                    replies.append(websocket.recv(timeout=10))
                wait_for(lambda: False, 1.5)  # outlive the timeout deadline
                websocket.close(code=1000)
            assert replies == ["ack o-1", "ack o-2", "ack o-3"]
            with pytest.raises(InvalidStatus) as refused:
                connect(url, open_timeout=10)  # no token: closed before it was accepted
            assert refused.value.response.status_code == 403
            base = f"http://127.0.0.1:{port}"
            assert wait_for(lines_written(events, 2), 10)
            document: dict[str, Any] = httpx.get(base + "/debug/vars", timeout=10).json()
            assert wait_for(lambda: sum(pinba.script_names.values()) >= 2, 10)
            out, _ = stop(server)
    finally:
        pinba.close()
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [event["event"] for event in lines] == ["request", "request"], "no timeout event"
    accepted, refused_event = lines
    assert accepted["http.route"] == "/ws/orders"
    assert accepted["http.response.status_code"] == 101
    assert accepted["websocket.close_code"] == 1000
    assert accepted["websocket.messages_received"] == 3
    assert accepted["websocket.messages_sent"] == 3
    assert accepted["duration_ms"] >= 1_400, "the whole connection"
    assert "error.type" not in accepted
    assert refused_event["http.response.status_code"] == 403
    assert refused_event["websocket.messages_received"] == 0
    assert "websocket.close_code" not in refused_event
    by_route = document["requests"]["by_route"]
    assert by_route["/ws/orders"]["count"] == 2
    assert pinba.script_names["/ws/orders"] == 2
    # A connection's length is no request latency: no duration point for it.
    series = list(document["otel"].get("http_server_request_duration", {}))
    assert not any("ws/orders" in key for key in series), series
    # The handshake's span, as the HTTP conventions have it, ended with the connection.
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    handshakes = [s for s in spans if s["name"] == "GET /ws/orders"]
    assert [s["kind"] for s in handshakes] == ["SpanKind.SERVER"] * 2
    statuses = sorted(s["attributes"]["http.response.status_code"] for s in handshakes)
    assert statuses == [101, 403]
    assert {s["attributes"]["url.scheme"] for s in handshakes} == {"ws"}
    assert {s["attributes"]["http.route"] for s in handshakes} == {"/ws/orders"}
