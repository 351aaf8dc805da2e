"""Run by tests/integration/test_django_shop.py in a process of its own: examples/django_shop's
WSGI application (psycopg's instrumentation on beside Django's query spans, as the project
ships) called in this process for each path given, as a WSGI server calls it; prints one JSON
object: how many requests the Python fold (otel_bridge.closing.fold_timers) took, and the
wide events. The database comes from the SHOP_DB_* variables."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any
from wsgiref.util import setup_testing_defaults

python_folds: list[str] = []


def _watch(frame: Any, event: str, arg: Any) -> None:
    code = frame.f_code
    if (
        event == "call"
        and code.co_name == "fold_timers"
        and code.co_filename.endswith("closing.py")
    ):
        python_folds.append(code.co_name)


def main(events_file: str, paths: list[str]) -> None:
    threading.setprofile(_watch)  # the export thread, started with the first request
    from examples.django_shop.shop.wsgi import application

    for path in paths:
        environ: dict[str, Any] = {"PATH_INFO": path, "HTTP_HOST": "127.0.0.1"}
        setup_testing_defaults(environ)
        statuses: list[str] = []

        def start_response(
            status: str, headers: Any, exc_info: Any = None, seen: list[str] = statuses
        ) -> None:
            seen.append(status)

        body = application(environ, start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()  # as a server does: the request ends here
        assert statuses[0].startswith("200"), statuses
    application.bridge.force_flush()  # type: ignore[attr-defined]
    threading.setprofile(None)
    with open(events_file) as lines:
        events = [json.loads(line) for line in lines]
    print(json.dumps({"python_folds": len(python_folds), "events": events}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
