from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from .servers import ROOT, free_port, start_writing_to, wait_for

pytestmark = pytest.mark.integration


def test_demo_serves_records_its_own_traffic_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    args = [sys.executable, "-m", "otel_bridge.cli", "demo", "--port", str(port)]
    process, stdout, stderr = start_writing_to(tmp_path, args, env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/users/1", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        # The built-in burst: half a second, then /stuck passes its deadline.
        assert wait_for(lambda: "event=timeout" in stdout.read_text(), 30)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    out, err = stdout.read_text(), stderr.read_text()
    assert process.returncode == 0, err
    assert f"otel-bridge demo on http://127.0.0.1:{port}" in out
    assert "otel-bridge-demo-user" in out and "https://demo.example.com/users/42" in out
    lines = [line for line in out.splitlines() if line.startswith("timestamp=")]
    routes = {m.group(1) for line in lines if (m := re.search(r"http.route=(\S+)", line))}
    assert {"/users/{uid}", "/search", "/stream", "/slow", "/error"} <= routes
    # /users/{uid}: a db timer and a cache timer, each under its own group.
    assert any(
        "timers.db.count=1" in line and "timers.cache.count=1" in line and "app.user_id=" in line
        for line in lines
    )
    assert any(
        "http.response.status_code=500" in line and "error.type=RuntimeError" in line
        for line in lines
    )
    assert any("event=timeout" in line and "url.path=/stuck" in line for line in lines)
    assert out.rstrip().endswith("otel-bridge demo stopped")
