"""Flask's URL rule as the route: `instrument_wsgi(app.wsgi_app)` (or of the Flask app) hooks
Flask's `request_started` signal, sent after the URL is matched, before any view or
`before_request` function runs. ``/hello/<name>`` is `http.route`, as contrib's Flask
instrumentation reports it. Imports nothing from Flask unless the app is one."""

from __future__ import annotations

from typing import Any

from otel_bridge._context import current

__all__ = ["flask_app", "hook"]


def flask_app(app: Any) -> Any:
    """The Flask application `app` is, or whose bound `wsgi_app` it is; else None."""
    candidate = getattr(app, "__self__", app)
    if type(candidate).__module__.startswith("flask") and hasattr(candidate, "url_map"):
        return candidate
    return None


def hook(app: Any) -> None:
    if getattr(app, "_otel_bridge_hooked", False):
        return
    from flask import request, request_started

    def started(sender: Any, **_: Any) -> None:
        builder = current.get()
        if builder is None:
            return
        try:
            rule = request.url_rule
            if rule is not None:
                builder.route = rule.rule
        except Exception as exc:  # noqa: BLE001 - the request goes on without a route
            builder.bridge.health.error("flask.route", exc)

    request_started.connect(started, app, weak=False)
    app._otel_bridge_hooked = True
