from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpx
import pytest

from .servers import ROOT, free_port, serve, uvicorn, wait_for

pytestmark = pytest.mark.integration


def test_real_server_serves_vars_and_the_terminal_view_reads_them() -> None:
    port = free_port()
    args = uvicorn("tests.integration.apps:asgi_app", port)
    env = {"OTEL_BRIDGE_EXPORTERS": "expvar"}
    with serve(args, port, env):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as c:
            for uid in range(5):
                c.get(f"/users/{uid}")

        def read() -> Any:
            return httpx.get(base + "/debug/vars").json()

        # Records reach the views within the exporter's 0.1 s batching.
        assert wait_for(lambda: read()["requests"]["total"]["count"] == 5)
        document = read()
        view = subprocess.run(
            [sys.executable, "-m", "otel_bridge.cli", "vars", f"127.0.0.1:{port}", "--once"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    # The program that was started (`python -m uvicorn`), as Go's os.Args[0] names its own,
    # not the interpreter: expvarmon names the service after it.
    assert document["cmdline"][0] == "uvicorn"
    assert "tests.integration.apps:asgi_app" in document["cmdline"][1:]
    assert document["memstats"]["Sys"] > 0
    assert document["requests"]["by_route"]["/users/{uid}"]["count"] == 5
    assert view.returncode == 0, view.stderr
    assert "requests 5  " in view.stdout
    assert "/users/{uid}" in view.stdout
    assert "memory  Alloc" in view.stdout


def test_terminal_view_reports_an_unreachable_endpoint() -> None:
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "otel_bridge.cli", "vars", f"127.0.0.1:{port}", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert f"cannot read http://127.0.0.1:{port}/debug/vars" in result.stderr
