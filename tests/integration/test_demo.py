from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from .servers import ROOT, free_port

pytestmark = pytest.mark.integration


def test_demo_serves_records_its_own_traffic_and_stops_cleanly_on_ctrl_c() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_bridge.cli", "demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/users/1", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(1.5)  # the built-in traffic burst takes about half a second
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"otel-bridge demo on http://127.0.0.1:{port}" in out
    lines = [line for line in out.splitlines() if line.startswith("[request]")]
    routes = {line.split()[2] for line in lines}
    assert {"/users/{uid}", "/search", "/stream", "/slow", "/error"} <= routes
    assert any("timers: cache x1 db x1" in line for line in lines)
    assert any("500" in line and "error=RuntimeError" in line for line in lines)
    assert out.rstrip().endswith("otel-bridge demo stopped")
