"""A clean stop of every supported server leaves nothing behind: no file in /dev/shm or /tmp,
no traceback; and the opt-in Cronitor startup sync ran exactly once for the server (for the
WSGI app, which declares no healthcheck, it sent nothing).

Every view that keeps server-wide state is on (expvar's scoreboard, wide events, Cronitor's
startup-sync claim)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.exporters.cronitor.fake import fake_cronitor

from .servers import end, free_port, gunicorn, serve, uvicorn

pytestmark = pytest.mark.integration

APP = "tests.exporters.cronitor.app:app"
WSGI = "tests.integration.apps:wsgi_app"
UVICORN_WORKER = ["-k", "uvicorn_worker.UvicornWorker"]
LAYOUTS = {
    "uvicorn": uvicorn(APP, 0),
    "uvicorn --workers 2": uvicorn(APP, 0, "--workers", "2"),
    "gunicorn, uvicorn workers": gunicorn(APP, 0, *UVICORN_WORKER, "--workers", "2"),
    "gunicorn, uvicorn workers, --preload": gunicorn(
        APP, 0, *UVICORN_WORKER, "--workers", "2", "--preload"
    ),
    "gunicorn, sync workers": gunicorn(WSGI, 0, "--workers", "2"),
    "gunicorn, gthread workers, --preload": gunicorn(
        WSGI, 0, "--workers", "2", "--threads", "4", "--preload"
    ),
}


def ours() -> set[Path]:
    """What otel_bridge may create: the scoreboard's segment (psm_* from gunicorn's master,
    otel_bridge_* under uvicorn's supervisor) and Cronitor's claim files."""
    return {
        path
        for directory in (Path("/dev/shm"), Path("/tmp"))
        for path in directory.iterdir()
        if path.name.startswith(("psm_", "otel_bridge", "otel-bridge"))
    }


def on_port(args: list[str], port: int) -> list[str]:
    placed = list(args)
    for flag in ("--port", "--bind"):
        if flag in placed:
            index = placed.index(flag) + 1
            placed[index] = str(port) if flag == "--port" else f"127.0.0.1:{port}"
    return placed


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_clean_stop_leaves_nothing_behind(layout: str, tmp_path: Path) -> None:
    port = free_port()
    before = ours()
    with fake_cronitor() as fake:
        env = {
            "OTEL_BRIDGE_EXPORTERS": "expvar,wide_events,cronitor",
            "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{tmp_path / 'events.jsonl'}",
            "OTEL_EXPORTER_CRONITOR_SYNC_ON_STARTUP": "true",
            "OTEL_EXPORTER_CRONITOR_PUBLIC_URL": "https://shop.example.com",
            "OTEL_EXPORTER_CRONITOR_ENDPOINT": fake.url,
            "CRONITOR_API_KEY": "k" * 32,
            "OTEL_SERVICE_NAME": "shop",
        }
        with serve(on_port(LAYOUTS[layout], port), port, env) as process:
            for _ in range(10):
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
                assert response.status_code == 200
            # The plain WSGI app declares no healthcheck: the one process that claims the
            # sync sends nothing (an empty list would change nothing at Cronitor).
            expected = 1 if APP in LAYOUTS[layout] else 0
            deadline = time.monotonic() + 10
            while expected and not fake.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            during = ours() - before
            time.sleep(0.5)  # a late second sync would show now
            _, stderr = end(process, signal.SIGTERM)
        puts = len(fake.requests)
    assert process.returncode is not None
    assert puts == expected, f"{puts} startup syncs for one server"
    assert any(path.name.startswith("otel-bridge-cronitor") for path in during), during
    assert ours() - before == set(), "left behind after a clean stop"
    assert "Traceback" not in stderr, stderr
