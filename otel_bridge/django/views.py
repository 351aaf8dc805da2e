"""`ExpVarView`: `/debug/vars` as a Django class-based view (django-expvar's name).

    path("debug/vars", ExpVarView.as_view(), name="expvar")

The same document and access rule as the wrapper's `/debug/vars` (loopback only unless
`OTEL_EXPORTER_EXPVAR_ALLOW` / `_TOKEN` open it), for URLconfs that route it themselves.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse
from django.views import View

from otel_bridge.django import _bridges

__all__ = ["ExpVarView"]

_standalone: Any = None
_lock = threading.Lock()


def _expvar_view() -> Any:
    """The expvar view of the bridge recording requests (the wrapper's or the middleware's),
    else one built from the settings."""
    global _standalone
    view = _bridges.expvar_view()
    if view is not None:
        return view
    if _standalone is None:
        with _lock:
            if _standalone is None:
                from otel_bridge.exporters.expvar._view import ExpvarEndpoint

                _standalone = ExpvarEndpoint.from_settings(_bridges.settings())
                _standalone.monitor.install()
    return _standalone


def forget() -> None:
    """Build the standalone view again at its next use (the settings changed)."""
    global _standalone
    with _lock:
        old, _standalone = _standalone, None
    if old is not None:
        old.monitor.uninstall()


_bridges.on_change.append(forget)


class ExpVarView(View):  # type: ignore[misc]  # Django ships no types
    http_method_names: ClassVar[list[str]] = ["get", "head", "options"]

    def get(self, request: HttpRequest) -> HttpResponse:
        headers = {key.lower(): value for key, value in request.headers.items()}
        headers.pop("accept", None)  # the JSON here; the dashboard lives at /debug/vars/ui
        status, response_headers, body = _expvar_view().respond(
            "GET", request.META.get("REMOTE_ADDR"), headers, path=None
        )
        response = HttpResponse(body, status=status)
        for name, value in response_headers:
            response[name] = value
        return response
