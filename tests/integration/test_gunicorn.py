from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

import otel_bridge.gunicorn

from .servers import (
    free_port,
    get_from_each,
    gunicorn,
    only_worker,
    serve,
    wait_for,
    worker_pids,
)

pytestmark = pytest.mark.integration


def plain_gunicorn(port: int, *extra: str) -> list[str]:
    return gunicorn(
        "tests.integration.apps:wsgi_app", port, "--graceful-timeout", "5", *extra, hooks=False
    )


@pytest.mark.parametrize("worker_class", ["sync", "gthread"])
def test_gunicorn_worker_records_every_request(worker_class: str) -> None:
    port = free_port()
    extra = ["--worker-class", worker_class, "--workers", "1"]
    if worker_class == "gthread":
        extra += ["--threads", "4"]
    base = f"http://127.0.0.1:{port}"
    with serve(plain_gunicorn(port, *extra), port), httpx.Client(base_url=base, timeout=10) as c:
        sizes = []
        for index in range(5):
            response = c.get(f"/item/{index}")
            assert response.status_code == 200
            sizes.append(len(response.content))
        assert c.get("/fail").status_code == 500
        records = c.get("/_records").json()["records"]
    assert [r["path"] for r in records] == [f"/item/{i}" for i in range(5)] + ["/fail"]
    ok = records[0]
    assert [r["bytes"] for r in records[:5]] == sizes
    assert (ok["status"], ok["completed"]) == (200, True)
    assert ok["timers"] == [{"chunk": "0"}, {"chunk": "1"}]
    assert ok["duration_ns"] >= 10_000_000, "timed to the last chunk"
    assert (records[-1]["status"], records[-1]["error_type"]) == (500, "RuntimeError")


def test_preloaded_app_works_in_every_forked_worker() -> None:
    """The bridge is built in the master (--preload); each worker must export its own records."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(plain_gunicorn(port, "--workers", "2", "--preload"), port) as master:
        workers = worker_pids(master, 2)
        served = get_from_each(base, ["/x"] * 40, workers)
        seen: dict[int, int] = {}

        def exported() -> bool:
            for pid in workers:
                with only_worker(pid, workers):
                    answer = httpx.get(base + "/_records", timeout=10).json()
                seen[answer["pid"]] = len(answer["records"])
            return seen == dict(served)

        wait_for(exported, 15)
    assert len(served) == 2, f"both workers served requests: {served}"
    assert seen == dict(served)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "multiprocess.md"


def documented_imports() -> dict[str, set[str]]:
    """Each `from otel_bridge.gunicorn import …` the docs give for a gunicorn.conf.py."""
    found = {}
    for match in re.finditer(
        r"from otel_bridge\.gunicorn import (\*|\(([^)]*)\))", DOCS.read_text()
    ):
        names = match.group(2)
        found[match.group(0)] = (
            {"*"} if names is None else {name.strip() for name in names.split(",") if name.strip()}
        )
    return found


def test_the_documented_hook_imports_are_the_module_s_hooks() -> None:
    forms = documented_imports()
    assert len(forms) == 2, forms  # the explicit list, and the one that cannot go stale
    listed = [names for names in forms.values() if names != {"*"}]
    assert listed == [set(otel_bridge.gunicorn.__all__)]
    hooks = {name for name in dir(otel_bridge.gunicorn) if not name.startswith("_")}
    assert set(otel_bridge.gunicorn.__all__) == {
        name for name in hooks if name in GUNICORN_HOOKS
    }, "every gunicorn hook the module defines is exported"


# gunicorn's server hooks (its documentation's "Server Hooks"), the names a config may define.
GUNICORN_HOOKS = {
    "on_starting",
    "on_reload",
    "when_ready",
    "pre_fork",
    "post_fork",
    "post_worker_init",
    "worker_int",
    "worker_abort",
    "pre_exec",
    "pre_request",
    "post_request",
    "child_exit",
    "worker_exit",
    "nworkers_changed",
    "on_exit",
    "ssl_context",
}


@pytest.mark.parametrize("form", ["explicit", "star"])
def test_a_users_config_importing_the_documented_hooks_gets_every_server_wide_figure(
    form: str, tmp_path: Path
) -> None:
    [statement] = [
        s for s, names in documented_imports().items() if (names == {"*"}) == (form == "star")
    ]
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(f"{statement}\n\nworkers = 2\n")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = [*plain_gunicorn(port), "-c", str(config)]
    with serve(args, port, {"OTEL_BRIDGE_EXPORTERS": "expvar"}):
        for _ in range(10):
            httpx.get(base + "/x", headers={"connection": "close"}, timeout=10)

        def ready() -> bool:
            found = httpx.get(base + "/debug/vars", timeout=10).json()["server"]
            sampled = [w for w in found["workers"] if w.get("rss_bytes", 0) > 0]
            return bool(found["total"]["requests"] == 10 and len(sampled) == 2)

        # The exporter threads' batches (every 0.1 s), the master's monitor (every second).
        assert wait_for(ready, 15)
        server = httpx.get(base + "/debug/vars", timeout=10).json()["server"]
    assert len(server["workers"]) == 2
    assert all(worker["rss_bytes"] > 0 for worker in server["workers"])
    assert server["monitor_sampled_ns"] > 0 and "listen_backlog" in server
    assert server["total"]["requests"] == 10
