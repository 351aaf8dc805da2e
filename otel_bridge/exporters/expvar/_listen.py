"""The expvar view's own HTTP listener, for when no wrapper serves the app (zero-code mode):
`/debug/vars` on a loopback port, Go's debug-server convention (:6060), with the same access
rules as the wrapper's endpoint."""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["listen"]

logger = logging.getLogger("otel_bridge")


class _Listener(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: past that a new
    connection is closed at once, so slow clients cannot pile up threads. Each connection has
    `deadline` seconds in all, however slowly its bytes trickle in or out."""

    max_connections = 32
    daemon_threads = True
    request_queue_size = 64  # socketserver's 5 drops connections in a burst of scrapes
    deadline = 10.0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # Past the deadline the socket is shut down: the handler's read or write then fails.
        expiry = threading.Timer(self.deadline, _cut, (request,))
        expiry.daemon = True
        expiry.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            expiry.cancel()
            self._slots.release()


def _cut(connection: socket.socket) -> None:
    try:
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def listen(view: Any, host: str, port: int, timeout: float = 10.0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "otel-bridge"

        def setup(self) -> None:
            super().setup()
            # A client that goes silent is dropped after `timeout` seconds; one that trickles
            # bytes, at the listener's deadline.
            self.connection.settimeout(timeout)

        def do_GET(self) -> None:
            path = self.path.partition("?")[0]
            if path not in (view.path, view.ui_path):
                self.send_error(404)
                return
            headers: dict[str, str] = {}
            for key, value in self.headers.items():
                key = key.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            status, response_headers, body = view.respond(
                self.command, self.client_address[0], headers, path
            )
            self.send_response(status)
            for name, value in response_headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            return

    server_class: type[_Listener] = _Listener
    if ":" in host:

        class V6(_Listener):
            address_family = socket.AF_INET6

        server_class = V6
    server = server_class((host, port), Handler)
    server.deadline = timeout
    thread = threading.Thread(target=server.serve_forever, name="otel-bridge-expvar", daemon=True)
    thread.start()
    logger.info("otel_bridge: /debug/vars on http://%s:%d%s", host, port, view.path)
    return server
