"""A local Cronitor Monitor API on 127.0.0.1 that validates like the real one (research/
cronitor.md: 400 with per-monitor errors, 403 for a bad key) and injects failures."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from otel_bridge.exporters.cronitor._spec import HealthcheckError, interval, validate_assertion

API_KEY = "test-api-key-0123456789"


@dataclass
class Fake:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # consumed one per request
    saved: dict[str, Any] = field(default_factory=dict)


def validate(monitor: Any, index: int) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []

    def error(field_name: str, message: str) -> None:
        key = monitor.get("key") if isinstance(monitor, dict) else None
        errors.append({"index": index, "key": key, "field": field_name, "message": message})

    if not isinstance(monitor, dict):
        error("", "a monitor is an object")
        return errors
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", str(monitor.get("key", ""))):
        error("key", "required")
    if monitor.get("type") != "check":
        error("type", "must be one of job, check, heartbeat, site")
    try:
        interval(monitor.get("schedule", ""))
    except HealthcheckError as exc:
        error("schedule", str(exc))
    for assertion in monitor.get("assertions", []):
        try:
            validate_assertion(assertion)
        except HealthcheckError as exc:
            error("assertions", str(exc))
    request = monitor.get("request")
    if not isinstance(request, dict):
        error("request", "the check type requires the request attribute to be set")
        return errors
    if not re.match(r"https?://[^/\s]+", str(request.get("url", ""))):
        error("request.url", "an absolute http(s) URL")
    method = request.get("method", "GET")
    if method not in ("GET", "HEAD", "POST", "PUT", "PATCH"):
        error("request.method", "unknown method")
    if ("body" in request) != (method in ("POST", "PUT", "PATCH")):
        error("request.body", "required for POST, PUT and PATCH only")
    if not 1 <= int(request.get("timeout_seconds", 10)) <= 15:
        error("request.timeout_seconds", "1 to 15")
    return errors


@contextmanager
def fake_cronitor() -> Iterator[Fake]:
    fake = Fake(url="")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            raw = self.rfile.read(length)
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw})
            mode = fake.failures.pop(0) if fake.failures else "ok"
            if mode == "stall":
                time.sleep(30)
                return
            if mode == "reset":
                self.connection.close()
                return
            if mode == "garbage":  # a proxy's page instead of Cronitor's JSON
                data = b"<html>502 upstream</html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if mode == "429":
                self.reply(429, {"retry_after_seconds": 0.2}, {"Retry-After": "0.2"})
                return
            if mode in ("500", "502", "503", "504"):
                self.reply(int(mode), {"error": "upstream"})
                return
            if self.path != "/api/monitors":
                self.reply(404, {"error": "Not found"})
                return
            expected = "Basic " + base64.b64encode(f"{API_KEY}:".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self.reply(403, {"error": "Invalid API key"})
                return
            try:
                document = json.loads(raw)
                monitors = document["monitors"]
            except (ValueError, KeyError, TypeError):
                self.reply(400, {"errors": [{"field": "", "message": "malformed JSON"}]})
                return
            errors = [e for i, m in enumerate(monitors) for e in validate(m, i)]
            if errors:
                self.reply(400, {"errors": errors})
                return
            if not document.get("rollback"):
                for monitor in monitors:
                    fake.saved[monitor["key"]] = monitor
            self.reply(200, {"monitors": monitors})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
