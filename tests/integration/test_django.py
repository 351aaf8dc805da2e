"""otel_bridge.django: Django's URL pattern reaches every view, under real gunicorn and uvicorn."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.exporters.cronitor.fake import API_KEY, fake_cronitor

from .servers import ROOT, free_port, gunicorn, python_path, serve, uvicorn

pytestmark = pytest.mark.integration

SERVERS = ("asgi-uvicorn", "wsgi-gunicorn")


def bind(name: str, port: int) -> list[str]:
    if name == "wsgi-gunicorn":
        return gunicorn(
            "tests.django_project.wsgi:application", port, "--workers", "1", hooks=False
        )
    return uvicorn("tests.django_project.asgi:application", port)


@pytest.mark.parametrize("middleware", ["", "1"], ids=["hooked-handler", "route-middleware"])
@pytest.mark.parametrize("name", SERVERS)
def test_route_templates_of_path_re_path_sync_and_async_views(name: str, middleware: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"OTEL_BRIDGE_EXPORTERS": "expvar", "ROUTE_MIDDLEWARE": middleware}
    with serve(bind(name, port), port, env):
        assert httpx.get(base + "/users/7/").text.startswith("user 7 ")
        assert httpx.get(base + "/users/8/").status_code == 200
        assert httpx.get(base + "/items/blue-pen").text == "item blue-pen"
        assert httpx.get(base + "/archive/2024/").text == "archive 2024"
        assert httpx.get(base + "/fail").status_code == 500
        assert httpx.get(base + "/fail-async").status_code == 500
        assert httpx.get(base + "/nowhere").status_code == 404
        records: list[dict[str, Any]] = httpx.get(base + "/_records", timeout=10).json()
        by_route = httpx.get(base + "/debug/vars", timeout=10).json()["requests"]["by_route"]
    routes = [(r["path"], r["route"], r["status"]) for r in records]
    assert routes == [
        ("/users/7/", "/users/<int:uid>/", 200),
        ("/users/8/", "/users/<int:uid>/", 200),
        ("/items/blue-pen", "/items/<slug:name>", 200),
        ("/archive/2024/", "/archive/(?P<year>[0-9]{4})/", 200),
        ("/fail", "/fail", 500),
        ("/fail-async", "/fail-async", 500),
        ("/nowhere", None, 404),
    ]
    # The view's own exception, not the 500 Django made of it (under ASGI too, where Django
    # handles it in a thread of its own).
    errors = [r["error_type"] for r in records]
    assert errors == [None, None, None, None, "RuntimeError", "LookupError", None]
    assert records[0]["attributes"] == {"http.route": "/users/<int:uid>/"}
    assert records[0]["timers"] == [{"group": "db", "op": "select"}], "timers inside a view"
    assert by_route["/users/<int:uid>/"]["count"] == 2
    assert by_route["<unmatched>"]["count"] == 1


@pytest.mark.parametrize("name", SERVERS)
def test_orm_queries_become_timers_and_wide_event_counts(name: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    events_file = tmp_path / "events.jsonl"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events_file}",
        "DJANGO_TEST_DB": str(tmp_path / "db.sqlite3"),
    }
    with serve(bind(name, port), port, env):
        assert httpx.get(base + "/notes").text == "hello hello 1"
        assert httpx.get(base + "/users/1/").status_code == 200
        assert httpx.get(base + "/me", headers={"x-remote-user": "alice"}).text == "alice"
        assert httpx.get(base + "/me").text == "anonymous"
        records: list[dict[str, Any]] = httpx.get(base + "/_records", timeout=10).json()
    notes = records[0]
    assert notes["route"] == "/notes"
    ops = sorted(timer["op"] for timer in notes["timers"])
    assert ops == ["select", "select", "select"], "one timer per query, the SQL verb as op"
    assert {timer["group"] for timer in notes["timers"]} == {"db"}
    assert not any("server" in timer for timer in notes["timers"]), "SQLite has no server"
    deadline = time.monotonic() + 10
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(events) < 4:
        if events_file.exists():
            events = [json.loads(line) for line in events_file.read_text().splitlines()]
        time.sleep(0.1)
    signed_in, anonymous = (e for e in events if e["url.path"] == "/me")
    assert signed_in["user.id"] == "1", "the user the request loaded"
    assert "user.id" not in anonymous
    assert signed_in["django.view"] == "tests.django_project.views.me"
    by_path = {event["url.path"]: event for event in events}
    assert by_path["/notes"]["db.query_count"] == 3
    assert by_path["/notes"]["db.duplicate_queries"] == 1
    assert by_path["/notes"]["db.query_ms"] > 0
    assert not any(key.startswith("app.") for key in by_path["/notes"])
    assert "db.query_count" not in by_path["/users/1/"], "no queries, no db fields"
    assert "user.id" not in by_path["/users/1/"], "the user is never loaded for the event"


def manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRONITOR"))}
    environment.update(
        {
            "PYTHONPATH": python_path(),
            "OTEL_SERVICE_NAME": "shop",
            "OTEL_EXPORTER_CRONITOR_PUBLIC_URL": "https://shop.example.com",
            "DJANGO_TEST_DB": str(tmp_path / "db.sqlite3"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, str(ROOT / "tests" / "django_project" / "manage.py"), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_projects_own_django_tests_see_the_middleware_and_override_settings(
    tmp_path: Path,
) -> None:
    # Django's own runner on tests/django_project/django_tests.py: the test client recorded by
    # the middleware alone, override_settings(OTEL_BRIDGE=...) applied and reverted.
    base = tmp_path / "base.jsonl"
    setting = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events,expvar",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{base}",
    }
    result = manage(
        tmp_path,
        "test",
        "tests.django_project.django_tests",
        "-v",
        "2",
        DJANGO_OTEL_BRIDGE=json.dumps(setting),
        BASE_EVENTS=str(base),
        ROUTE_MIDDLEWARE="1",
        DJANGO_TEST_DB="",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 6 tests" in result.stderr, result.stderr
    # 3 + 1 (the 500) + 1 (/me after the override) + 2 (/ops/vars) + 1 (the wrapped handler)
    assert base.read_text().count("\n") == 8, "the events the base settings kept"


def test_manage_py_healthchecks_lists_marked_url_patterns_and_syncs(tmp_path: Path) -> None:
    with fake_cronitor() as fake:
        listed = manage(tmp_path, "healthchecks", OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url)
        nothing_sent = list(fake.requests)
        synced = manage(
            tmp_path,
            "healthchecks",
            "--sync",
            CRONITOR_API_KEY=API_KEY,
            OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url,
        )
        migrated = manage(
            tmp_path, "migrate", CRONITOR_API_KEY=API_KEY, OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url
        )
    assert listed.returncode == 0, listed.stderr
    monitors = {m["key"]: m for m in json.loads(listed.stdout)["monitors"]}
    urls = {key: monitor["request"]["url"] for key, monitor in monitors.items()}
    assert urls == {
        "shop-api-user": "https://shop.example.com/api/users/1/",
        "shop-archive": "https://shop.example.com/archive/2024/",
        "shop-health": "https://shop.example.com/health/",
        "shop-ping": "https://shop.example.com/ping",
    }
    assert monitors["shop-api-user"]["schedule"] == "every 5 minutes"
    assert monitors["shop-ping"]["assertions"] == ["response.code = 200"]
    assert nothing_sent == [], "listing sends nothing"
    assert synced.returncode == 0, synced.stderr
    assert "synced 4 monitors" in synced.stderr
    assert sorted(fake.saved) == sorted(urls)
    assert migrated.returncode == 0, migrated.stderr
    assert len(fake.requests) == 1, "migrate never puts monitors"


def test_manage_py_healthchecks_refuses_a_url_cronitor_cannot_reach(tmp_path: Path) -> None:
    result = manage(tmp_path, "healthchecks", OTEL_EXPORTER_CRONITOR_PUBLIC_URL="http://127.0.0.1")
    assert result.returncode == 2
    assert "Cronitor cannot reach 127.0.0.1" in result.stderr


@pytest.mark.parametrize(
    ("kind", "route", "template"),
    [
        ("route", "users/<int:uid>/", "users/{uid}/"),
        ("route", "files/<path:rest>", "files/{rest}"),
        ("regex", r"^archive/(?P<year>[0-9]{4})/(?P<slug>[-\w]+)/$", "archive/{year}/{slug}/"),
        ("regex", r"^api/(?P<v>(v1|v2))/$", "api/{v}/"),
    ],
)
def test_url_patterns_become_fillable_templates(kind: str, route: str, template: str) -> None:
    from django.urls.resolvers import RegexPattern, RoutePattern

    from otel_bridge.django._healthchecks import _template

    pattern = RoutePattern(route) if kind == "route" else RegexPattern(route)
    assert _template(pattern) == template


def test_a_regex_with_unnamed_groups_cannot_be_a_healthcheck() -> None:
    from django.urls.resolvers import RegexPattern

    from otel_bridge.django._healthchecks import _template
    from otel_bridge.exporters.cronitor import HealthcheckError

    with pytest.raises(HealthcheckError, match=r"only named groups"):
        _template(RegexPattern(r"^page/([0-9]+)/$"))


@pytest.mark.parametrize("module", ["wsgi", "asgi"])
def test_the_wrapped_handler_knows_the_monitors_for_startup_sync(
    tmp_path: Path, module: str
) -> None:
    script = (
        f"from tests.django_project.{module} import application\n"
        "view = [e for e in application.bridge.exporters if e.name == 'cronitor'][0]\n"
        "print(' '.join(m['key'] for m in view.monitors()))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRONITOR"))}
    environment.update(
        PYTHONPATH=python_path(),
        OTEL_BRIDGE_EXPORTERS="cronitor",
        OTEL_EXPORTER_CRONITOR_PUBLIC_URL="https://shop.example.com",
        DJANGO_TEST_DB=str(tmp_path / "db.sqlite3"),
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["app-api-user", "app-archive", "app-health", "app-ping"]


def test_vars_py_variables_are_served_by_the_wrapper_and_by_expvar_view(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"OTEL_BRIDGE_EXPORTERS": "expvar", "DJANGO_TEST_DB": str(tmp_path / "db.sqlite3")}
    with serve(bind("wsgi-gunicorn", port), port, env):
        wrapped = httpx.get(base + "/debug/vars").json()
        routed = httpx.get(base + "/ops/vars")
        posted = httpx.post(base + "/ops/vars")
    for document in (wrapped, routed.json()):
        assert document["notes"] == {"limit": 100, "seen": 3}, "same name: dicts merged"
        assert document["version"] == "1.2.3"
        assert "memstats" in document and "cmdline" in document
    assert routed.headers["content-type"].startswith("application/json")
    assert posted.status_code == 405


def test_a_broken_vars_py_is_reported_by_manage_py_check(tmp_path: Path) -> None:
    reported = manage(tmp_path, "check", EXPVAR_SKIP="")
    skipped = manage(tmp_path, "check")
    assert reported.returncode == 0, "a warning, not an error: Django still starts"
    assert "otel_bridge.W001" in reported.stderr
    assert "tests.django_project.brokenapp" in reported.stderr
    assert "not_an_installed_module" in reported.stderr
    assert "otel_bridge.W001" not in skipped.stderr + skipped.stdout


def test_the_otel_bridge_setting_goes_over_the_environment(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    setting = {"OTEL_BRIDGE_EXPORTERS": ["expvar"], "OTEL_EXPORTER_EXPVAR_PATH": "/ops/debug"}
    env = {
        "OTEL_BRIDGE_EXPORTERS": "none",  # what the environment says
        "DJANGO_OTEL_BRIDGE": json.dumps(setting),
        "DJANGO_TEST_DB": str(tmp_path / "db.sqlite3"),
    }
    with serve(bind("wsgi-gunicorn", port), port, env):
        served = httpx.get(base + "/ops/debug")
        default_path = httpx.get(base + "/debug/vars")
    assert served.status_code == 200 and "memstats" in served.json()
    assert default_path.status_code == 404, "the path came from the setting too"


def test_manage_py_check_reports_bad_otel_bridge_settings(tmp_path: Path) -> None:
    setting = {"OTEL_BRIDGE_EXPORTERS": "expvar,carrier-pigeon", "OTEL_BRIDGE_TYPO": 1}
    bad = manage(tmp_path, "check", DJANGO_OTEL_BRIDGE=json.dumps(setting))
    good = manage(tmp_path, "check", DJANGO_OTEL_BRIDGE=json.dumps({"OTEL_SERVICE_NAME": "shop"}))
    assert bad.returncode == 1
    assert "otel_bridge.E001" in bad.stderr and "OTEL_BRIDGE_TYPO" in bad.stderr
    assert "otel_bridge.E002" in bad.stderr and "carrier-pigeon" in bad.stderr
    assert good.returncode == 0, good.stderr


def test_the_django_these_tests_ran_against() -> None:
    # `make test` runs this file twice: with the newest Django the venv has, and with the
    # oldest supported LTS put first on PYTHONPATH (scripts/test). Each run checks its own.
    import django

    expected = os.environ.get("OTEL_BRIDGE_TEST_DJANGO")
    script = "import django; print(django.get_version())"
    served = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": python_path()},
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    assert served == django.get_version(), "the servers import the same Django as the tests"
    if expected:
        assert django.get_version().startswith(expected)


@pytest.mark.parametrize("name", SERVERS)
def test_a_timeout_event_names_the_stuck_view_sync_or_async(name: str, tmp_path: Path) -> None:
    # Under uvicorn, Django's ASGI handler runs the view in a task (async) or asgiref's
    # thread (sync) and waits on it: the stack must be the view's, not the handler's wait.
    port = free_port()
    events_file = tmp_path / "events.jsonl"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events_file}",
        "OTEL_EXPORTER_WIDE_EVENTS_TIMEOUT": "0.5",
    }
    paths = ["/stuck/2"] if name == "wsgi-gunicorn" else ["/stuck/2", "/stuck-async/2"]
    with serve(bind(name, port), port, env):
        for path in paths:
            assert httpx.get(base_of(port) + path, timeout=10).text == "done"

        def written() -> list[dict[str, Any]]:
            if not events_file.exists():
                return []
            return [json.loads(line) for line in events_file.read_text().splitlines()]

        deadline = time.monotonic() + 10
        while len(written()) < len(paths) and time.monotonic() < deadline:
            time.sleep(0.1)
    timeouts = {event["url.path"]: event for event in written() if event["event"] == "timeout"}
    assert set(timeouts) == set(paths)
    assert "stuck_in_sync_view" in timeouts["/stuck/2"]["stack"]
    assert "time.sleep" in timeouts["/stuck/2"]["stack"]
    if name != "wsgi-gunicorn":
        assert "stuck_in_async_view" in timeouts["/stuck-async/2"]["stack"]
        assert "asyncio.wait(" not in timeouts["/stuck-async/2"]["stack"]


def base_of(port: int) -> str:
    return f"http://127.0.0.1:{port}"
