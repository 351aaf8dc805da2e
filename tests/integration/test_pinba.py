from __future__ import annotations

import socket

import httpx
import pytest

from otel_bridge.exporters.pinba._proto import decode
from tests.exporters.pinba.test_exporter import request_tags_of, tags_of

from .servers import free_port, serve, uvicorn

pytestmark = pytest.mark.integration


def test_uvicorn_app_sends_one_packet_per_request_with_nested_and_httpx_timers() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as pinba:
        pinba.bind(("127.0.0.1", 0))
        pinba.settimeout(10)
        port = free_port()
        env = {
            "OTEL_BRIDGE_EXPORTERS": "pinba",
            "OTEL_EXPORTER_PINBA_ENDPOINT": f"127.0.0.1:{pinba.getsockname()[1]}",
            "OTEL_EXPORTER_PINBA_HOSTNAME": "it-host",
            "OTEL_EXPORTER_PINBA_TAGS": "env=it",
        }
        args = uvicorn("tests.integration.apps:asgi_app", port)
        with serve(args, port, env), httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/nested").text == "stock 42"
            assert c.get("/users/9").status_code == 200
            # The exporter thread sends within its batching interval (0.1 s).
            packets = [decode(pinba.recvfrom(65536)[0]) for _ in range(2)]
    nested, user = sorted(packets, key=lambda p: p.script_name)
    assert (nested.script_name, user.script_name) == ("/nested", "/users/{uid}")
    assert (nested.hostname, nested.server_name, nested.status) == ("it-host", "127.0.0.1", 200)
    assert request_tags_of(nested) == {"customer": "acme", "env": "it"}
    assert tags_of(nested) == [
        {"group": "order", "op": "load"},
        {"group": "db", "op": "select", "table": "orders"},
        {"group": "http", "op": "GET", "server": "inventory.internal"},
    ]
    order, db, http = nested.timer_value
    assert order >= db >= 0.002 and order >= http
    assert nested.document_size == len(b"stock 42")
