from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import otel_bridge
from otel_bridge.exporters.cronitor import (
    CronitorSync,
    Healthcheck,
    HealthcheckError,
    monitors_from_app,
)
from otel_bridge.exporters.cronitor._client import put_monitors
from tests.conftest import Harness

from .fake import API_KEY, fake_cronitor

ROOT = Path(__file__).resolve().parents[3]


@otel_bridge.healthcheck
async def health(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


@otel_bridge.healthcheck(schedule=300, assertions=["response.body contains ok"], tags=["api"])
async def user(request: Any) -> PlainTextResponse:
    return PlainTextResponse("user")


async def search(request: Any) -> PlainTextResponse:
    return PlainTextResponse("results")


async def plain(request: Any) -> PlainTextResponse:
    return PlainTextResponse("not checked")


def shop() -> Starlette:
    search_route = otel_bridge.healthcheck(
        Route("/search", search, name="search"), query={"q": "shoes"}, timeout=5
    )
    api = [
        Route("/users/{uid:int}", user, name="user-detail"),
        search_route,
        Route("/plain", plain, name="plain"),
    ]
    marked = otel_bridge.healthcheck(
        Route("/users/{uid:int}/orders", plain, name="orders"), path_params={"uid": 7}
    )
    api.append(marked)
    return Starlette(routes=[Route("/health", health, name="health"), Mount("/api/v1", routes=api)])


def derive(app: Any, **kwargs: Any) -> list[dict[str, Any]]:
    kwargs.setdefault("public_url", "https://shop.example.com")
    kwargs.setdefault("service", "shop")
    return monitors_from_app(app, **kwargs)


def test_marked_routes_become_check_monitors_keyed_by_route_name() -> None:
    user_route = shop().routes[1].routes[0]  # type: ignore[attr-defined]
    # A route with parameters needs sample values: declared on the route itself here.
    otel_bridge.healthcheck(user_route, path_params={"uid": 42}, schedule=300)
    app = Starlette(routes=[shop().routes[0], Mount("/api/v1", routes=[user_route])])
    monitors = {m["key"]: m for m in derive(app)}
    assert set(monitors) == {"shop-health", "shop-user-detail"}
    health_monitor = monitors["shop-health"]
    assert health_monitor == {
        "type": "check",
        "key": "shop-health",
        "name": "GET shop.example.com/health",
        "schedule": "every 60 seconds",
        "request": {
            "url": "https://shop.example.com/health",
            "method": "GET",
            "timeout_seconds": 10,
            "follow_redirects": True,
            "verify_ssl": True,
        },
        "assertions": ["response.code = 200", "response.time < 2s"],
        "tags": ["otel-bridge", "shop"],
        "note": "Derived from route 'health' (GET /health)",
    }
    assert monitors["shop-user-detail"]["request"]["url"] == (
        "https://shop.example.com/api/v1/users/42"
    )
    assert monitors["shop-user-detail"]["schedule"] == "every 5 minutes"


def test_query_mount_prefixes_and_environment_suffix() -> None:
    app = shop()
    app.routes[1].routes[0] = Route("/users/{uid:int}", plain, name="user-detail")  # type: ignore[attr-defined]
    monitors = {m["key"]: m for m in derive(app, environment="staging")}
    assert set(monitors) == {"shop-health-staging", "shop-search-staging", "shop-orders-staging"}
    search_monitor = monitors["shop-search-staging"]
    assert search_monitor["request"]["url"] == "https://shop.example.com/api/v1/search?q=shoes"
    assert search_monitor["request"]["timeout_seconds"] == 5
    assert search_monitor["environments"] == ["staging"]
    assert monitors["shop-orders-staging"]["request"]["url"].endswith("/api/v1/users/7/orders")


def test_a_route_without_sample_parameters_is_named_in_the_error() -> None:
    with pytest.raises(HealthcheckError, match=r"route 'user-detail' .*uid.* path_params"):
        derive(shop())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "DELETE"}, "one of GET, HEAD, POST, PUT, PATCH"),
        ({"method": "POST"}, "POST checks need a body"),
        ({"body": "x"}, "only POST, PUT and PATCH"),
        ({"schedule": 10}, "30 seconds to 1 hour"),
        ({"schedule": "0 * * * *"}, "a check runs on an interval"),
        ({"timeout": 20}, "1 to 15 seconds"),
        ({"assertions": ["response.code == 200"]}, "equality as '=', not '=='"),
        ({"assertions": ["response.json count"]}, "takes one of"),
        ({"assertions": ["body contains ok"]}, "unknown subject"),
        ({"assertions": "response.code = 200"}, "a list of strings"),
        ({"key": "has space"}, "letters, digits"),
    ],
)
def test_declarations_cronitor_would_refuse_fail_where_declared(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(HealthcheckError, match=message):
        otel_bridge.healthcheck(**options)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://localhost",
        "https://*.example.com",
        "/relative",
        "http://[::1]",
        "http://0.0.0.0",
    ],
)
def test_the_public_url_must_be_reachable_from_the_internet(url: str) -> None:
    with pytest.raises(otel_bridge.ConfigError, match="OTEL_EXPORTER_CRONITOR_PUBLIC_URL"):
        otel_bridge.Settings.from_env({"OTEL_EXPORTER_CRONITOR_PUBLIC_URL": url})


def test_sync_puts_every_monitor_once_with_basic_auth() -> None:
    monitors = derive(Starlette(routes=[Route("/health", health, name="health")]))
    with fake_cronitor() as fake:
        result = put_monitors(
            monitors, api_key=API_KEY, endpoint=fake.url, api_version="2025-11-28"
        )
    assert result.ok and result.attempts == 1
    [request] = fake.requests
    assert request["path"] == "/api/monitors"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Cronitor-Version"] == "2025-11-28"
    assert json.loads(request["body"]) == {"monitors": monitors}
    assert set(fake.saved) == {"shop-health"}


def test_retries_what_is_worth_retrying_and_nothing_else() -> None:
    monitors = derive(Starlette(routes=[Route("/health", health, name="health")]))
    with fake_cronitor() as fake:
        fake.failures = ["reset", "429", "503", "502"]
        retried = put_monitors(monitors, api_key=API_KEY, endpoint=fake.url, budget=20)
        fake.failures = ["500"]
        server_error = put_monitors(monitors, api_key=API_KEY, endpoint=fake.url)
        refused = put_monitors(monitors, api_key="wrong-key", endpoint=fake.url)
        invalid = put_monitors(
            [{**monitors[0], "schedule": "every 5 seconds"}], api_key=API_KEY, endpoint=fake.url
        )
        fake.failures = ["garbage"]
        garbage = put_monitors(monitors, api_key=API_KEY, endpoint=fake.url)
    assert (retried.ok, retried.attempts) == (True, 5)
    assert (server_error.ok, server_error.status, server_error.attempts) == (False, 500, 1)
    assert (refused.ok, refused.status, refused.attempts) == (False, 403, 1)
    assert (invalid.ok, invalid.status, invalid.attempts) == (False, 400, 1)
    assert (garbage.ok, garbage.status) == (False, 200), "a 200 that is not Cronitor's JSON"
    assert "unexpected answer" in garbage.message and "502 upstream" in garbage.message
    assert invalid.errors[0]["key"] == "shop-health"
    assert invalid.errors[0]["field"] == "schedule"


def test_a_stalled_api_is_given_up_within_the_budget() -> None:
    monitors = derive(Starlette(routes=[Route("/health", health, name="health")]))
    with fake_cronitor() as fake:
        fake.failures = ["stall"] * 5
        started = time.monotonic()
        result = put_monitors(monitors, api_key=API_KEY, endpoint=fake.url, budget=2.0)
        elapsed = time.monotonic() - started
    assert not result.ok and "gave up" in result.message
    assert elapsed < 3.0


APP_MODULE = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
import otel_bridge

@otel_bridge.healthcheck(schedule=120)
async def health(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/health", health, name="health")])
"""


def cli(
    tmp_path: Path, *args: str, source: str = APP_MODULE, **env: str
) -> subprocess.CompletedProcess[str]:
    """`otel-bridge healthchecks sync` for the app `source` defines (the shop by default)."""
    (tmp_path / "shopapp.py").write_text(source)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CRONITOR"))}
    environment.update(
        PYTHONPATH=str(ROOT),
        OTEL_SERVICE_NAME="shop",
        OTEL_EXPORTER_CRONITOR_PUBLIC_URL="https://shop.example.com",
        **env,
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_bridge.cli",
            "healthchecks",
            "sync",
            "--app",
            "shopapp:app",
            *args,
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.integration
def test_cli_dry_run_prints_the_exact_payload_and_sends_nothing(tmp_path: Path) -> None:
    with fake_cronitor() as fake:
        result = cli(
            tmp_path,
            "--dry-run",
            CRONITOR_API_KEY=API_KEY,
            OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url,
        )
        yaml_result = cli(tmp_path, "--dry-run", "--format", "yaml")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [m["key"] for m in document["monitors"]] == ["shop-health"]
    assert document["monitors"][0]["schedule"] == "every 2 minutes"
    assert fake.requests == []
    assert "checks:\n  shop-health:\n" in yaml_result.stdout


@pytest.mark.integration
def test_cli_syncs_validates_and_reports(tmp_path: Path) -> None:
    with fake_cronitor() as fake:
        synced = cli(tmp_path, CRONITOR_API_KEY=API_KEY, OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url)
        validated = cli(
            tmp_path,
            "--validate",
            CRONITOR_API_KEY=API_KEY,
            OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url,
        )
        fake.failures = ["stall"] * 10
        started = time.monotonic()
        stalled = cli(
            tmp_path,
            CRONITOR_API_KEY=API_KEY,
            OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url,
            OTEL_EXPORTER_CRONITOR_TIMEOUT="2",
        )
        elapsed = time.monotonic() - started
        no_key = cli(tmp_path, OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url)
    assert synced.returncode == 0 and "synced 1 monitors" in synced.stderr
    assert validated.returncode == 0
    assert json.loads(fake.requests[1]["body"])["rollback"] is True
    assert stalled.returncode == 1 and "gave up" in stalled.stderr
    assert elapsed < 10
    assert no_key.returncode == 1 and "CRONITOR_API_KEY is not set" in no_key.stderr
    assert len(fake.requests) >= 3


@pytest.mark.integration
def test_our_request_matches_what_the_cronitor_sdk_sends(tmp_path: Path) -> None:
    monitors = derive(Starlette(routes=[Route("/health", health, name="health")]))
    script = textwrap.dedent(
        f"""
        import json, sys, cronitor
        from cronitor import monitor
        monitor.Monitor._monitor_api_url = classmethod(lambda cls, key=None: sys.argv[1])
        cronitor.api_key = {API_KEY!r}
        cronitor.Monitor.put(json.loads(sys.argv[2]))
        """
    )
    with fake_cronitor() as fake:
        sdk = subprocess.run(
            [sys.executable, "-c", script, fake.url + "/monitors", json.dumps(monitors)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sdk.returncode == 0, sdk.stderr
        ours = put_monitors(monitors, api_key=API_KEY, endpoint=fake.url)
        assert ours.ok
    theirs_request, our_request = fake.requests
    assert our_request["path"] == theirs_request["path"] == "/api/monitors"
    for header in ("Authorization", "Content-Type"):
        assert our_request["headers"][header] == theirs_request["headers"][header]
    assert base64.b64decode(our_request["headers"]["Authorization"][6:]) == f"{API_KEY}:".encode()
    assert json.loads(our_request["body"]) == json.loads(theirs_request["body"])


@pytest.mark.integration
def test_startup_sync_happens_once_per_gunicorn_server(tmp_path: Path) -> None:
    from tests.integration.servers import free_port, serve

    port = free_port()
    with fake_cronitor() as fake:
        env = {
            "OTEL_BRIDGE_EXPORTERS": "cronitor",
            "OTEL_EXPORTER_CRONITOR_SYNC_ON_STARTUP": "true",
            "OTEL_EXPORTER_CRONITOR_PUBLIC_URL": "https://shop.example.com",
            "OTEL_EXPORTER_CRONITOR_ENDPOINT": fake.url,
            "CRONITOR_API_KEY": API_KEY,
            "OTEL_SERVICE_NAME": "shop",
        }
        args = [
            "gunicorn",
            "tests.exporters.cronitor.app:app",
            "-c",
            "python:otel_bridge.gunicorn",
            "-k",
            "uvicorn_worker.UvicornWorker",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "3",
            "--log-level",
            "warning",
        ]
        with serve(args, port, env):
            time.sleep(2)
        puts = list(fake.requests)
    assert len(puts) == 1, f"{len(puts)} PUTs for one deploy"
    assert [m["key"] for m in json.loads(puts[0]["body"])["monitors"]] == ["shop-health"]


def test_healthcheck_spec_of_true_and_dicts() -> None:
    assert Healthcheck.of(True) == Healthcheck()
    assert Healthcheck.of({"schedule": 120}).schedule == 120
    with pytest.raises(HealthcheckError):
        Healthcheck.of("yes")  # type: ignore[arg-type]
    sync = CronitorSync(otel_bridge.Settings())
    with pytest.raises(otel_bridge.ConfigError, match="OTEL_EXPORTER_CRONITOR_PUBLIC_URL"):
        sync.monitors()


def test_the_cronitor_view_alone_builds_no_records_and_keeps_spans_and_metrics(
    harness: Harness,
) -> None:
    # Monitors come from routes: with no view that reads records, none is built (and no CPU
    # time measured), while the span and the duration metric are what they always are.
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/hi", otel_bridge.healthcheck(hello))])
    settings = otel_bridge.Settings(exporters=("cronitor",)).replace(cronitor_sync_on_startup=False)
    wrapped = harness.asgi(app, settings=settings, record_exporters=[])
    transport = httpx.ASGITransport(app=wrapped)

    async def requests() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(3):
                assert (await client.get("/hi")).text == "hi"

    bridge = wrapped.bridge
    built: list[Any] = []
    original = bridge._build

    def counting_build(builder: Any) -> Any:
        built.append(builder)
        return original(builder)

    bridge._build = counting_build
    asyncio.run(requests())
    asyncio.run(requests())
    spans = harness.finished_spans()
    assert [view.name for view in bridge.exporters] == ["cronitor"]
    assert built == []
    assert not bridge.measure_cpu
    assert [s.name for s in spans] == ["GET /hi"] * 6
    (point,) = harness.metric_points("http.server.request.duration")
    assert point.count == 6
    assert point.attributes["http.route"] == "/hi"


def test_routes_of_included_fastapi_routers_become_monitors() -> None:
    """The most common FastAPI layout: routers with prefixes, included with a prefix, one
    inside another. Each marked route is found with its full path (FastAPI 0.165 leaves one
    included-router entry in app.routes instead of copying the routes)."""
    from fastapi import APIRouter, FastAPI

    ops = APIRouter(prefix="/ops")

    @ops.get("/health", name="ops-health")
    @otel_bridge.healthcheck(schedule="every 5 minutes")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    v2 = APIRouter(prefix="/v2")

    @v2.get("/items/{item_id}", name="item")
    @otel_bridge.healthcheck(path_params={"item_id": 7})
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @v2.get("/unmarked")
    def unmarked() -> None:
        return None

    ops.include_router(v2)
    app = FastAPI()
    app.include_router(ops, prefix="/api")
    monitors = {
        m["key"]: m["request"]["url"]
        for m in monitors_from_app(app, public_url="https://shop.example.com", service="shop")
    }
    assert monitors == {
        "shop-ops-health": "https://shop.example.com/api/ops/health",
        "shop-item": "https://shop.example.com/api/ops/v2/items/7",
    }


def test_a_marked_route_that_cannot_be_placed_is_an_error_naming_it() -> None:
    class Opaque:
        name = "websocket-feed"

    otel_bridge.healthcheck(Opaque)
    app = Starlette(routes=[Opaque()])  # type: ignore[list-item]
    with pytest.raises(HealthcheckError, match="websocket-feed"):
        monitors_from_app(app, public_url="https://shop.example.com")


def test_an_app_without_healthchecks_sends_nothing_at_startup_or_from_the_cli(
    tmp_path: Path,
) -> None:
    # Cronitor upserts by key and deletes nothing: an empty list would change nothing there.
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hi")

    plain = Starlette(routes=[Route("/hi", hello, name="hi")])
    with fake_cronitor() as fake:
        settings = otel_bridge.Settings(exporters=("cronitor",)).replace(
            cronitor_api_key=API_KEY,
            cronitor_endpoint=fake.url,
            cronitor_public_url="https://shop.example.com",
            cronitor_sync_on_startup=True,
        )
        view = CronitorSync(settings, plain)
        view.start()
        assert view.thread is not None
        view.thread.join(10)
        synced = cli(
            tmp_path,
            source="from starlette.applications import Starlette\napp = Starlette()\n",
            CRONITOR_API_KEY=API_KEY,
            OTEL_EXPORTER_CRONITOR_ENDPOINT=fake.url,
        )
        view.shutdown()
    assert view.result is not None
    assert (view.result.ok, view.result.attempts) == (True, 0)
    assert "no route declares a healthcheck: nothing sent" in view.result.message
    assert synced.returncode == 0, synced.stderr
    assert "nothing sent" in synced.stderr
    assert fake.requests == []
