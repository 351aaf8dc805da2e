"""`/debug/vars` behind a real reverse proxy on the same host, as people deploy it: Debian's nginx
in front of gunicorn on TCP and on a unix socket, and of uvicorn on TCP (which puts the
forwarded client in the peer's place itself) and on a unix socket.

A remote client is stood for by nginx's realip module (`X-Test-Client`, see servers.NGINX_SITE):
nginx then forwards the request exactly as it forwards one from that address. Every address is
on loopback; the allow-lists use 127.0.0.2 as "the monitoring host".
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from benchmarks.slow_clients import slow_clients

from .servers import FORWARDING, free_port, gunicorn, nginx, serve, uvicorn

pytestmark = pytest.mark.integration

REMOTE = {"x-test-client": "203.0.113.9"}
MONITOR = {"x-test-client": "127.0.0.2"}
TOKEN = "monitoring-token-0123456789"


@contextmanager
def server(
    kind: str,
    tmp_path: Path,
    env: dict[str, str] | None = None,
    unix: bool = False,
    extra: tuple[str, ...] = (),
) -> Iterator[int | Path]:
    """`kind` (gunicorn or uvicorn) serving the test app with the expvar view on, on a fresh
    TCP port or a unix socket; yields where it listens."""
    where: int | Path = tmp_path / f"{kind}.sock" if unix else free_port()
    if kind == "gunicorn":
        args = gunicorn("tests.integration.apps:wsgi_app", 0)
        if isinstance(where, Path):
            args[args.index("--bind") + 1] = f"unix:{where}"
        else:
            args[args.index("--bind") + 1] = f"127.0.0.1:{where}"
    else:
        args = uvicorn("tests.integration.apps:asgi_app", 0)
        if isinstance(where, Path):
            start = args.index("--host")
            args[start : start + 4] = ["--uds", str(where)]
        else:
            args[args.index("--port") + 1] = str(where)
    args += extra
    with serve(args, where, {"OTEL_BRIDGE_EXPORTERS": "expvar", **(env or {})}):
        yield where


def client(where: int | Path) -> httpx.Client:
    if isinstance(where, Path):
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(where)), base_url="http://app")
    return httpx.Client(base_url=f"http://127.0.0.1:{where}")


def status(
    where: int | Path, headers: dict[str, str] | None = None, path: str = "/debug/vars"
) -> int:
    with client(where) as c:
        return c.get(path, headers=headers).status_code


def app_path(kind: str) -> str:
    return "/users/7" if kind == "uvicorn" else "/hello"


@pytest.mark.parametrize(
    ("kind", "unix"),
    [("gunicorn", False), ("gunicorn", True), ("uvicorn", False), ("uvicorn", True)],
)
def test_a_remote_client_behind_a_same_host_proxy_is_refused(
    kind: str, unix: bool, tmp_path: Path
) -> None:
    """The default: a client through nginx is the client it is, whichever header nginx uses."""
    with server(kind, tmp_path, unix=unix) as where, ExitStack() as proxies:
        ports = {
            name: proxies.enter_context(nginx(where, tmp_path / f"nginx-{name}", [name]))
            for name in FORWARDING
        }
        every = proxies.enter_context(nginx(where, tmp_path / "nginx-all"))
        seen = {name: status(port, REMOTE) for name, port in ports.items()}
        seen["all three"] = status(every, REMOTE)
        local = {name: status(port) for name, port in ports.items()}
        app = status(every, REMOTE, app_path(kind))
        # Direct to the server, a client's own forwarding headers are a claim of forwarding.
        forged = {
            name: status(where, {name: value})
            for name, value in (
                ("x-forwarded-for", "203.0.113.9"),
                ("x-real-ip", "203.0.113.9"),
                ("forwarded", "for=203.0.113.9"),
                ("via", "1.1 edge"),
            )
        }
        direct = status(where)
    assert seen == {"x-forwarded-for": 403, "x-real-ip": 403, "forwarded": 403, "all three": 403}
    assert local == dict.fromkeys(FORWARDING, 403), "an untrusted proxy proves nothing"
    assert app == 200, "the app itself answers everyone"
    assert forged == {"x-forwarded-for": 403, "x-real-ip": 403, "forwarded": 403, "via": 403}
    assert direct == 200, "a local peer that forwards nobody: TCP and unix sockets alike"


@pytest.mark.parametrize(("kind", "unix"), [("gunicorn", False), ("uvicorn", True)])
def test_the_token_opens_the_endpoint_through_the_proxy(
    kind: str, unix: bool, tmp_path: Path
) -> None:
    env = {"OTEL_EXPORTER_EXPVAR_TOKEN": TOKEN}
    with server(kind, tmp_path, env, unix=unix) as where, nginx(where, tmp_path / "nginx") as port:
        with_token = status(port, {**REMOTE, "authorization": f"Bearer {TOKEN}"})
        with client(port) as c:
            document = c.get(
                "/debug/vars", headers={**REMOTE, "authorization": f"Bearer {TOKEN}"}
            ).json()
        wrong = status(port, {**REMOTE, "authorization": f"Bearer {TOKEN}x"})
        without = status(port, REMOTE)
    assert (with_token, wrong, without) == (200, 403, 403)
    assert "memstats" in document


@pytest.mark.parametrize(
    ("kind", "unix", "proxy"),
    [
        ("gunicorn", False, "127.0.0.1/32"),
        ("uvicorn", False, "127.0.0.1/32"),
        ("uvicorn", True, "unix"),
        ("gunicorn", True, "unix"),
    ],
)
def test_a_trusted_proxy_forwards_for_the_allowed_monitoring_host_only(
    kind: str, unix: bool, proxy: str, tmp_path: Path
) -> None:
    env = {
        "OTEL_EXPORTER_EXPVAR_TRUSTED_PROXIES": proxy,
        "OTEL_EXPORTER_EXPVAR_ALLOW": "127.0.0.2/32",
    }
    # uvicorn's --proxy-headers (on by default) would put the forwarded client in the peer's
    # place: with a monitoring host on loopback, as here, that cannot be told from a header a
    # client forged through a local proxy, and is refused. A real monitoring host is not on
    # loopback (tests/exporters/expvar/test_access.py covers that case); here uvicorn leaves
    # the peer as it is.
    extra = ("--no-proxy-headers",) if kind == "uvicorn" and not unix else ()
    with server(kind, tmp_path, env, unix=unix, extra=extra) as where, ExitStack() as proxies:
        ports = {
            name: proxies.enter_context(nginx(where, tmp_path / f"nginx-{name}", [name]))
            for name in FORWARDING
        }
        monitor = {name: status(port, MONITOR) for name, port in ports.items()}
        other = {name: status(port, {"x-test-client": "127.0.0.3"}) for name, port in ports.items()}
        # The proxy's own host is not the monitoring host.
        local = {name: status(port) for name, port in ports.items()}
        direct = status(where)
    assert monitor == dict.fromkeys(FORWARDING, 200)
    assert other == dict.fromkeys(FORWARDING, 403)
    assert local == dict.fromkeys(FORWARDING, 403)
    assert direct == 403, "an explicit allow-list is consulted for a unix-socket peer too"


def test_a_unix_socket_peer_is_checked_against_an_explicit_allow_list(tmp_path: Path) -> None:
    """uvicorn --uds gives no client address: it is local, and local is not on this list."""
    env = {"OTEL_EXPORTER_EXPVAR_ALLOW": "127.0.0.2/32"}
    with server("uvicorn", tmp_path, env, unix=True) as where:
        refused = status(where)
    with server(
        "uvicorn", tmp_path, {"OTEL_EXPORTER_EXPVAR_ALLOW": "127.0.0.1/32"}, unix=True
    ) as where:
        served = status(where)
    assert (refused, served) == (403, 200)


CORPUS = Path(__file__).parents[1] / "data" / "secrets.jsonl"


def test_no_secret_shape_leaves_a_real_server(tmp_path: Path) -> None:
    """The whole corpus on a real server's command line and in its requests: `/debug/vars`
    shows each argument with exactly its secret replaced, and the wide events the same."""
    shapes = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    of = {view: [s for s in shapes if s["view"] == view] for view in ("cmdline", "query", "path")}
    # One command line for all: mysql's own cases last, since `-p…` after a mysql program is
    # its password (and harmless `-port=80`-like arguments come before it).
    ordered = sorted(of["cmdline"], key=lambda shape: shape["given"][0].startswith("mysql"))
    argv = [argument for shape in ordered for argument in shape["given"]]
    shown = [argument for shape in ordered for argument in shape["shown"]]
    port = free_port()
    events = tmp_path / "events.jsonl"
    env = {
        "OTEL_BRIDGE_EXPORTERS": "expvar,wide_events",
        "OTEL_EXPORTER_WIDE_EVENTS_SINK": f"file:{events}",
    }
    huge = "B" * 12_000  # uvicorn's h11 takes a request head up to 16 KiB
    with serve(["tests.integration.argv_server", str(port), *argv], port, env):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            cmdline = c.get("/debug/vars").json()["cmdline"]
            for shape in of["query"]:
                c.get(f"/users/1?{shape['given']}")
            for shape in of["path"]:
                c.get(shape["given"])
            c.get("/users/2", headers={"user-agent": huge, "x-request-id": huge})
        expected = len(of["query"]) + len(of["path"]) + 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            written = events.read_text().splitlines() if events.exists() else []
            if len(written) >= expected:
                break
            time.sleep(0.05)
    assert cmdline == ["tests.integration.argv_server", str(port), *shown]
    recorded = [json.loads(line) for line in written]
    assert len(recorded) == expected
    queries = [event["url.query"] for event in recorded[: len(of["query"])]]
    assert queries == [shape["shown"] for shape in of["query"]]
    paths = [event["url.path"] for event in recorded[len(of["query"]) : -1]]
    assert paths == [shape["shown"] for shape in of["path"]]
    assert recorded[-1]["user_agent.original"].endswith("…[truncated]")
    assert len(recorded[-1]["user_agent.original"]) < 2100
    assert recorded[-1]["request.id"] == recorded[-1]["trace_id"]


def test_slow_clients_on_the_endpoint_do_not_hold_the_app(tmp_path: Path) -> None:
    """100 readers that never read their `/debug/vars` answers, and 20 slowloris clients
    sending their request a byte at a time, while the app serves: no app request waits for
    them (each would take the slow clients' whole 4 s if it did). The latency cost is in
    benchmarks/RESULTS.md (benchmarks/slow_clients.py)."""
    port = free_port()
    with (
        serve(
            uvicorn("tests.integration.apps:asgi_app", port),
            port,
            {"OTEL_BRIDGE_EXPORTERS": "expvar"},
        ),
        slow_clients(port, readers=100, loris=20, seconds=4.0) as held,
    ):
        latencies = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            while held.is_alive():
                started = time.monotonic()
                assert c.get("/users/1").status_code == 200
                latencies.append(time.monotonic() - started)
            scrape = c.get("/debug/vars")
    assert held.connected >= 110, "the slow clients were there"
    # Served all along: a request the slow clients held up would wait their 4 s.
    assert len(latencies) > 10
    assert max(latencies) < 3.5, max(latencies)
    assert scrape.status_code == 200, "the endpoint still answers a normal scrape"
