"""Run by Django's own test runner (`manage.py test`, from tests/integration/test_django.py):
what a Django project's test suite sees — the test client recorded by OtelBridgeMiddleware,
and `override_settings(OTEL_BRIDGE=...)` taking effect for the middleware, the wrapped
handler and ExpVarView, then reverting.

The base settings (DJANGO_OTEL_BRIDGE) write wide events to $BASE_EVENTS.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
from django.contrib.auth.models import User
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import TestCase, override_settings
from opentelemetry import trace

import otel_bridge
from otel_bridge.django import force_flush
from otel_bridge.errors import ConfigError
from tests.django_project.models import Note

BASE = Path(os.environ["BASE_EVENTS"])


def events(path: Path) -> list[dict[str, Any]]:
    assert force_flush(10_000)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def overridden(sink: Path, **more: Any) -> override_settings:
    return override_settings(
        OTEL_BRIDGE={
            "OTEL_BRIDGE_EXPORTERS": ["wide_events", "expvar"],
            "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{sink}",
            **more,
        }
    )


class MiddlewareRecordsTheTestClient(TestCase):  # type: ignore[misc]  # Django ships no types
    @classmethod
    def setUpTestData(cls) -> None:
        Note.objects.create(text="hello")
        User.objects.create(username="alice")

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())

    def test_route_view_status_and_queries_of_client_requests(self) -> None:
        before = len(events(BASE))
        self.assertEqual(self.client.get("/notes").content, b"hello hello 1")
        self.assertEqual(self.client.get("/users/7/").status_code, 200)
        self.assertEqual(self.client.get("/nowhere").status_code, 404)
        new = events(BASE)[before:]
        self.assertEqual(
            [(e["url.path"], e.get("http.route"), e["http.response.status_code"]) for e in new],
            [
                ("/notes", "/notes", 200),
                ("/users/7/", "/users/<int:uid>/", 200),
                ("/nowhere", None, 404),
            ],
        )
        notes = new[0]
        self.assertEqual(notes["db.query_count"], 3)
        self.assertEqual(notes["db.duplicate_queries"], 1)
        self.assertEqual(notes["django.view"], "tests.django_project.views.notes")
        self.assertEqual(notes["http.request.method"], "GET")

    def test_an_exception_in_the_view_is_its_error_type(self) -> None:
        self.client.raise_request_exception = False
        before = len(events(BASE))
        self.assertEqual(self.client.get("/fail").status_code, 500)
        (failed,) = events(BASE)[before:]
        self.assertEqual(failed["http.response.status_code"], 500)
        self.assertEqual(failed["error.type"], "RuntimeError")

    def test_override_settings_redirects_events_and_reverts(self) -> None:
        sink = self.dir / "override.jsonl"
        before = len(events(BASE))
        with overridden(sink, OTEL_EXPORTER_WIDE_EVENTS_USER_ID=False):
            self.client.get("/me", HTTP_X_REMOTE_USER="alice")
            inside = events(sink)
        self.client.get("/me", HTTP_X_REMOTE_USER="alice")
        after = events(BASE)[before:]
        self.assertEqual([e["url.path"] for e in inside], ["/me"])
        self.assertNotIn("user.id", inside[0], "OTEL_EXPORTER_WIDE_EVENTS_USER_ID=false")
        self.assertEqual([e["url.path"] for e in after], ["/me"], "back to the base sink")
        self.assertEqual(after[0]["user.id"], str(User.objects.get(username="alice").pk))

    def test_override_settings_guards_expvar_view_with_a_token(self) -> None:
        self.assertEqual(self.client.get("/ops/vars").status_code, 200)
        with overridden(self.dir / "e.jsonl", OTEL_EXPORTER_EXPVAR_TOKEN="s3cret-token-123"):
            self.assertEqual(self.client.get("/ops/vars").status_code, 403)
            allowed = self.client.get("/ops/vars", HTTP_AUTHORIZATION="Bearer s3cret-token-123")
            self.assertEqual(allowed.status_code, 200)
            self.assertIn("memstats", allowed.json())
        self.assertEqual(self.client.get("/ops/vars").status_code, 200)

    def test_an_invalid_override_names_the_variable(self) -> None:
        invalid = override_settings(OTEL_BRIDGE={"OTEL_BRIDGE_QUEUE_SIZE": "lots"})
        with self.assertRaises(ConfigError) as raised, invalid:
            pass
        self.assertIn("OTEL_BRIDGE_QUEUE_SIZE", str(raised.exception))
        self.assertIn("lots", str(raised.exception))

    def test_the_wrapped_handler_follows_override_settings(self) -> None:
        # As Django's test client does: a real handler would close the test's connection.
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            self.wrapped_handler_follows_override_settings()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    def wrapped_handler_follows_override_settings(self) -> None:
        app: Any = otel_bridge.instrument_wsgi(get_wsgi_application())
        first = app.bridge
        client = httpx.Client(transport=httpx.WSGITransport(app), base_url="http://127.0.0.1")
        provider: Any = trace.get_tracer_provider()
        processors = len(provider._active_span_processor._span_processors)
        sink = self.dir / "wrapped.jsonl"
        before = len(events(BASE))
        for _ in range(5):  # rebuilt on every entry and exit; nothing piles up
            with overridden(sink):
                self.assertEqual(client.get("/users/3/").status_code, 200)
        self.assertEqual(client.get("/users/4/").status_code, 200)
        inside = events(sink)
        outside = events(BASE)[before:]
        self.assertEqual([e["url.path"] for e in inside], ["/users/3/"] * 5)
        self.assertEqual([e["url.path"] for e in outside], ["/users/4/"])
        self.assertEqual(outside[0]["http.route"], "/users/<int:uid>/", "recorded by the wrapper")
        self.assertIsNot(app.bridge, first)
        # (the middleware's own bridge, replaced too, is built again at its next request)
        self.assertLessEqual(len(provider._active_span_processor._span_processors), processors)
