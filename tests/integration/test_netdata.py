"""A real consumer: netdata's `go_expvar` collector (Debian `netdata-plugins-python`, unpacked
by scripts/system-deps into .cache/netdata) reads our /debug/vars and reports numbers."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import httpx
import pytest

from .servers import ROOT, free_port, serve, start_writing_to, uvicorn, wait_for

pytestmark = pytest.mark.integration
NETDATA = ROOT / ".cache" / "netdata" / "usr" / "lib" / "netdata"


def test_netdata_go_expvar_collector_reads_memstats_and_our_counters(tmp_path: Path) -> None:
    plugin = NETDATA / "plugins.d" / "python.d.plugin"
    if not plugin.exists():
        if os.environ.get("CI"):
            pytest.fail("netdata's plugin is missing: scripts/system-deps unpacks it")
        pytest.skip("netdata's plugin is not unpacked (run scripts/system-deps)")
    port = free_port()
    user = tmp_path / "user"
    (user / "python.d").mkdir(parents=True)
    (user / "python.d.conf").write_text("enabled: yes\ndefault_run: yes\ngo_expvar: yes\n")
    (user / "python.d" / "go_expvar.conf").write_text(
        f"""app:
  name: app
  url: 'http://127.0.0.1:{port}/debug/vars'
  collect_memstats: true
  extra_charts:
    - id: "requests"
      options: {{name: requests, title: requests, units: requests, family: http,
                context: expvar.requests, chart_type: line}}
      lines:
        - {{expvar_key: 'requests.total.count', expvar_type: int, id: requests_total}}
"""
    )
    for directory in ("lib", "lock"):
        (tmp_path / directory).mkdir()
    env = {
        **os.environ,
        "NETDATA_USER_CONFIG_DIR": str(user),
        "NETDATA_STOCK_CONFIG_DIR": str(NETDATA / "conf.d"),
        "NETDATA_PLUGINS_DIR": str(NETDATA / "plugins.d"),
        "NETDATA_LIB_DIR": str(tmp_path / "lib"),
        "NETDATA_LOCK_DIR": str(tmp_path / "lock"),
    }
    args = uvicorn("tests.integration.apps:asgi_app", port)
    with serve(args, port, {"OTEL_BRIDGE_EXPORTERS": "expvar"}):
        for uid in range(4):
            httpx.get(f"http://127.0.0.1:{port}/users/{uid}")
        assert wait_for(
            lambda: (
                httpx.get(f"http://127.0.0.1:{port}/debug/vars").json()["requests"]["total"][
                    "count"
                ]
                == 4
            )
        )
        args = [sys.executable, str(plugin), "1", "debug", "nolock", "go_expvar"]
        process, stdout, stderr = start_writing_to(tmp_path, args, env)
        # Until it has collected once: the plugin checks the job, then sets every chart.
        assert wait_for(lambda: "SET 'requests_total'" in stdout.read_text(), 30)
        process.terminate()
        process.wait(timeout=20)
        out, err = stdout.read_text(), stderr.read_text()
    assert "check success" in err, err[-2000:]
    values = dict(re.findall(r"SET '(\w+)' = (-?\d+)", out))
    assert int(values["memstats_heap_alloc"]) > 0
    assert int(values["memstats_sys"]) > 0
    assert int(values["memstats_live_objects"]) > 0
    assert int(values["requests_total"]) == 4
