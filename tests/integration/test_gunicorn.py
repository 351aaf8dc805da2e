from __future__ import annotations

import collections

import httpx
import pytest

from .servers import free_port, gunicorn, serve

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
    served: collections.Counter[int] = collections.Counter()
    with serve(plain_gunicorn(port, "--workers", "2", "--preload"), port):
        for _ in range(40):
            # A fresh connection each time so both workers get requests.
            response = httpx.get(f"http://127.0.0.1:{port}/x", timeout=10)
            served[int(response.text.split()[0])] += 1
        seen: dict[int, int] = {}
        for _ in range(200):
            if len(seen) == len(served):
                break
            answer = httpx.get(f"http://127.0.0.1:{port}/_records", timeout=10).json()
            seen[answer["pid"]] = len(answer["records"])
    assert len(served) == 2, f"both workers served requests: {served}"
    assert seen == dict(served)
