"""The dashboard in a real browser (Debian's headless Chromium): it loads under its strict
Content-Security-Policy, fetches /debug/vars and shows the numbers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from .servers import free_port, serve, uvicorn

pytestmark = pytest.mark.integration


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (make test installs it)")
        pytest.skip("chromium is not installed")
    return path


def browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dashboard_renders_live_numbers_under_its_csp(tmp_path: Path) -> None:
    port = free_port()
    args = uvicorn("tests.integration.apps:asgi_app", port)
    with serve(args, port, {"OTEL_BRIDGE_EXPORTERS": "expvar"}):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as c:
            for uid in range(7):
                c.get(f"/users/{uid}")
            page = c.get("/debug/vars/ui")
            browser_accept = c.get("/debug/vars", headers={"accept": "text/html,*/*"})
        dom = browse(f"{base}/debug/vars/ui", tmp_path / "dom", "--dump-dom")
        shot = tmp_path / "dashboard.png"
        browse(f"{base}/debug/vars/ui", tmp_path / "shot", f"--screenshot={shot}")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy
    assert "http" not in page.text.split("<script>")[0], "no external resources"
    assert browser_accept.headers["content-type"].startswith("text/html")
    total = re.search(r'id="requests-total">([\d,]+)<', dom.stdout)
    assert total is not None, dom.stdout[-2000:]
    assert int(total.group(1).replace(",", "")) >= 7, "the script ran and fetched the JSON"
    assert "/users/{uid}" in dom.stdout
    assert 'id="status">updated' in dom.stdout
    assert shot.stat().st_size > 20_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
