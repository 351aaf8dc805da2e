"""`requests` in /debug/vars is the server's under multi-process servers, whichever worker
answers: never decreasing while traffic runs, exactly equal once it stops, and a killed
worker's figures kept. Tried with gunicorn's three worker kinds and uvicorn's own --workers."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from .servers import free_port, gunicorn, only_worker, serve, uvicorn, wait_for

pytestmark = pytest.mark.integration

WSGI = "tests.integration.apps:wsgi_app"
ASGI = "tests.integration.apps:asgi_app"
SERVERS = {
    "gunicorn-sync": (WSGI, ["--workers", "3"], 3),
    "gunicorn-gthread": (WSGI, ["--workers", "3", "--threads", "4"], 3),
    "gunicorn-uvicorn": (ASGI, ["--workers", "3", "-k", "uvicorn_worker.UvicornWorker"], 3),
    "uvicorn-workers": (ASGI, ["--workers", "2"], 2),
}
# What each app is sent, and the route each request is counted under.
TRAFFIC = {
    WSGI: [("/a", "/a"), ("/b", "/b"), ("/a", "/a"), ("/fail", "/fail")],
    ASGI: [
        ("/users/1", "/users/{uid}"),
        ("/users/2", "/users/{uid}"),
        ("/fail", "/fail"),
        ("/nowhere", "<unmatched>"),
    ],
}


def environment(name: str) -> dict[str, str]:
    env = {"OTEL_BRIDGE_EXPORTERS": "expvar"}
    if SERVERS[name][0] == WSGI:
        # A raw WSGI app with no router: its paths are its routes (the opt-in).
        env["OTEL_BRIDGE_UNROUTED"] = "path"
    return env


def command(name: str, port: int) -> list[str]:
    app, extra, _ = SERVERS[name]
    # The servers log each /fail's traceback: on a pipe nobody reads until the end, a few
    # dozen would fill it and block the workers.
    quiet = ["--log-level", "critical"]
    if name == "uvicorn-workers":
        return uvicorn(app, port, *extra, *quiet)
    # A kept-alive connection stays open longer than gunicorn's default 2 s between polls on
    # a loaded machine.
    return gunicorn(app, port, *extra, "--graceful-timeout", "5", "--keep-alive", "30", *quiet)


def poll(client: httpx.Client | None, base: str) -> dict[str, Any]:
    """One read of /debug/vars: on `client`'s kept-alive connection, or on a new one."""
    if client is not None:
        document: dict[str, Any] = client.get(base + "/debug/vars").json()
    else:
        headers = {"connection": "close"}
        document = httpx.get(base + "/debug/vars", headers=headers, timeout=10).json()
    return document


def counts(requests: dict[str, Any]) -> Counter[str]:
    """Every figure that only grows: per route and in total, counts and status classes."""
    found: Counter[str] = Counter()
    for scope, figures in [("total", requests["total"]), *requests["by_route"].items()]:
        for key in ("count", "errors", "2xx", "4xx", "5xx"):
            found[f"{scope}.{key}"] = figures[key]
    return found


def never_decreasing(reads: list[dict[str, Any]]) -> list[str]:
    """Figures that went down from one read to the next."""
    fell = []
    for before, after in itertools.pairwise(reads):
        a, b = counts(before), counts(after)
        fell += [f"{key}: {a[key]} -> {b[key]}" for key in a if b[key] < a[key]]
    return fell


@pytest.mark.parametrize("name", list(SERVERS))
def test_requests_are_the_servers_whichever_worker_answers(name: str) -> None:
    app, _, workers = SERVERS[name]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    traffic = TRAFFIC[app]
    with serve(command(name, port), port, environment(name)):
        assert wait_for(lambda: len(poll(None, base)["server"]["workers"] or []) == workers, 20)
        sent: Counter[str] = Counter()
        lock = threading.Lock()
        running = threading.Event()
        running.set()

        def load() -> None:
            with httpx.Client(timeout=10) as client:
                index = 0
                while running.is_set() and index < 400:
                    path, route = traffic[index % len(traffic)]
                    client.get(base + path, headers={"connection": "close"})
                    with lock:
                        sent[route] += 1
                    index += 1

        loaders = [threading.Thread(target=load) for _ in range(3)]
        for loader in loaders:
            loader.start()
        during: list[dict[str, Any]] = []
        kept_alive: list[dict[str, Any]] = []
        kept_pids = set()
        with httpx.Client(timeout=10) as keep:  # as expvarmon polls: one connection
            for _ in range(20):
                during.append(poll(None, base))
                document = poll(keep, base)
                kept_alive.append(document["requests"])
                kept_pids.add(document["process"]["pid"])
                time.sleep(0.05)
            running.clear()
            for loader in loaders:
                loader.join(60)
            total = sum(sent.values())

            def settled() -> bool:
                return bool(poll(None, base)["requests"]["total"]["count"] == total)

            assert wait_for(settled, 10), (poll(None, base)["requests"]["total"], total)
            after = [poll(None, base) for _ in range(20)]
            kept_after = poll(keep, base)["requests"]
        # Every worker answers once more: each in turn the only one running. (A poll lands
        # on any of them, and an idle server may give every poll to the one that answered
        # the last.)
        answered = {d["process"]["pid"]: d for d in after}
        pids = [w["pid"] for w in after[0]["server"]["workers"]]
        for pid in pids:
            with only_worker(pid, pids):
                answered[pid] = poll(None, base)
            assert answered[pid]["process"]["pid"] == pid

    assert all(d["requests"]["scope"] == "server" for d in during + after)
    assert never_decreasing([d["requests"] for d in during]) == []
    assert never_decreasing(kept_alive) == []
    if name != "gunicorn-sync":  # sync workers close every connection: no keep-alive
        assert len(kept_pids) == 1, "a kept-alive connection stays with one worker"
    # Once traffic stops: the same figures, exactly, from every worker that answers.
    final = after[0]["requests"]
    assert all(d["requests"] == final for d in after)
    assert kept_after == final
    assert len(answered) == workers
    assert all(d["requests"] == final for d in answered.values())
    assert {route: figures["count"] for route, figures in final["by_route"].items()} == sent
    assert final["total"]["5xx"] == sent["/fail"]
    # Each worker's own figures, in a section of their own, add up to the server's.
    mine = [d["requests_this_worker"] for d in answered.values()]
    assert all(m["scope"] == "worker" for m in mine)
    assert all(m["total"]["count"] < total for m in mine), "traffic reached several workers"
    assert sum(m["total"]["count"] for m in mine) == total
    # OpenTelemetry's own metrics are per process, and say so.
    assert all("this worker" in d["otel"]["_scope"] for d in after)


@pytest.mark.parametrize("name", ["gunicorn-sync", "uvicorn-workers"])
def test_a_killed_workers_figures_are_kept(name: str) -> None:
    app, _, workers = SERVERS[name]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(command(name, port), port, environment(name)) as server:
        assert wait_for(lambda: len(poll(None, base)["server"]["workers"] or []) == workers, 20)
        path, route = TRAFFIC[app][0]
        for _ in range(60):
            httpx.get(base + path, headers={"connection": "close"}, timeout=10)
        assert wait_for(lambda: poll(None, base)["requests"]["total"]["count"] == 60, 10)
        before = poll(None, base)["requests"]
        pids = [w["pid"] for w in poll(None, base)["server"]["workers"]]
        victim = next(pid for pid in pids if pid != server.pid)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> bool:
            live = [w["pid"] for w in poll(None, base)["server"]["workers"]]
            return victim not in live and len(live) == workers

        # gunicorn's master folds its figures when it reaps it; uvicorn's supervisor starts
        # a new worker, which takes over the dead one's slot and folds them.
        assert wait_for(replaced, 30)
        after = [poll(None, base)["requests"] for _ in range(10)]
    assert all(a["total"]["count"] == 60 for a in after)
    assert all(a["by_route"][route]["count"] == 60 for a in after)
    for a in after:
        for key in ("duration_ms_min", "duration_ms_max", "duration_ms_p50", "duration_ms_p99"):
            assert a["total"][key] == before["total"][key]
        assert a["total"]["duration_ms_sum"] == pytest.approx(before["total"]["duration_ms_sum"])
