"""Run by tests/integration/test_django_shop.py in a process of its own: examples/django_shop's
WSGI application (psycopg's instrumentation on beside Django's query spans, as the project
ships) served by the standard library's WSGI server on a free loopback port, in this process,
so that its export thread can be watched; each path given is requested over HTTP. Prints one
JSON object: how many requests the Python fold (otel_bridge.closing.fold_timers) took, and the
wide events. The database comes from the SHOP_DB_* variables."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

python_folds: list[str] = []


def _watch(frame: Any, event: str, arg: Any) -> None:
    code = frame.f_code
    if (
        event == "call"
        and code.co_name == "fold_timers"
        and code.co_filename.endswith("closing.py")
    ):
        python_folds.append(code.co_name)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(events_file: str, paths: list[str]) -> None:
    threading.setprofile(_watch)  # the export thread, started with the first request
    from examples.django_shop.shop.wsgi import application

    server = make_server("127.0.0.1", 0, application, handler_class=_Quiet)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        for path in paths:
            url = f"http://127.0.0.1:{server.server_port}{path}"
            with urllib.request.urlopen(url, timeout=20) as response:
                assert response.status == 200, (path, response.status)
                response.read()
    finally:
        server.shutdown()
    application.bridge.force_flush()  # type: ignore[attr-defined]
    threading.setprofile(None)
    with open(events_file) as lines:
        events = [json.loads(line) for line in lines]
    print(json.dumps({"python_folds": len(python_folds), "events": events}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
