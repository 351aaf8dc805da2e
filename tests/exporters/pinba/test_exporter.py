from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import otel_bridge
from otel_bridge.exporters.pinba import PinbaExporter
from otel_bridge.exporters.pinba._proto import PinbaRequest, decode
from otel_bridge.record import RequestRecord
from tests.conftest import Harness

pytestmark = pytest.mark.anyio


class Collector:
    """A UDP socket of the test's own on 127.0.0.1, standing in for a Pinba server."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port: int = self.sock.getsockname()[1]

    def packets(self, count: int) -> list[PinbaRequest]:
        return [decode(self.sock.recvfrom(65536)[0]) for _ in range(count)]

    def raw(self) -> bytes:
        return self.sock.recvfrom(65536)[0]

    def nothing_more(self) -> bool:
        self.sock.settimeout(0.2)
        try:
            self.sock.recvfrom(65536)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.sock.close()


def exporter_for(collector: Collector, **kwargs: Any) -> PinbaExporter:
    kwargs.setdefault("hostname", "web-1")
    return PinbaExporter([("127.0.0.1", collector.port)], **kwargs)


def tags_of(packet: PinbaRequest) -> list[dict[str, str]]:
    words, out, offset = packet.dictionary, [], 0
    for count in packet.timer_tag_count:
        names = packet.timer_tag_name[offset : offset + count]
        values = packet.timer_tag_value[offset : offset + count]
        out.append({words[n]: words[v] for n, v in zip(names, values, strict=True)})
        offset += count
    return out


def request_tags_of(packet: PinbaRequest) -> dict[str, str]:
    words = packet.dictionary
    return {words[n]: words[v] for n, v in zip(packet.tag_name, packet.tag_value, strict=True)}


async def user(request: Any) -> Response:
    otel_bridge.tag(country="fr", premium=True)
    with (
        otel_bridge.timer(group="db", op="select"),
        otel_bridge.timer(group="db", op="select", table="users"),
    ):
        await asyncio.sleep(0.002)
    for _ in range(2):
        with otel_bridge.timer(group="cache", op="get"):
            await asyncio.sleep(0)
    return PlainTextResponse("hello " + request.path_params["uid"])


def app() -> Starlette:
    return Starlette(routes=[Route("/users/{uid}", user)])


def client(wrapped: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(wrapped), base_url="http://shop.test")


async def test_every_request_becomes_one_packet_with_its_timers_and_tags(
    harness: Harness, collector: Collector
) -> None:
    exporter = exporter_for(collector, tags={"env": "test"})
    wrapped = harness.asgi(app(), record_exporters=[exporter, harness.collector])
    async with client(wrapped) as c:
        assert (await c.get("/users/1")).text == "hello 1"
        await c.get("/users/2")
    [record, _] = harness.records()
    first, second = collector.packets(2)
    assert (first.hostname, first.server_name, first.script_name) == (
        "web-1",
        "shop.test",
        "/users/{uid}",
    )
    assert (first.status, first.schema, first.document_size) == (200, "http", 7)
    assert (first.request_count, second.request_count) == (1, 2)
    assert first.request_time == pytest.approx(record.duration_ns / 1e9, rel=1e-3)
    assert first.memory_peak == record.max_rss_bytes > 0
    assert first.memory_footprint > 0
    assert request_tags_of(first) == {"country": "fr", "premium": "1", "env": "test"}
    # Creation order (outer select first), identical tag sets merged with their hits summed.
    assert tags_of(first) == [
        {"group": "db", "op": "select"},
        {"group": "db", "op": "select", "table": "users"},
        {"group": "cache", "op": "get"},
    ]
    assert first.timer_hit_count == [1, 1, 2]
    assert first.timer_value[0] >= first.timer_value[1] >= 0.002
    assert len(first.timer_ru_utime) == len(first.timer_ru_stime) == 3
    assert wrapped.bridge.health.counts["pinba.packets_sent"] == 2


@pytest.mark.parametrize("cpu", [False, True])
async def test_a_single_timer_carries_its_time_and_cpu_and_hits(
    harness: Harness, collector: Collector, cpu: bool
) -> None:
    # One timer a request is the usual case, and has a path of its own in the exporter.
    async def busy(request: Any) -> Response:
        with otel_bridge.timer(group="cpu"):
            deadline = time.process_time() + 0.02
            while time.process_time() < deadline:
                pass
        return PlainTextResponse("ok")

    settings = otel_bridge.Settings(exporters=()).replace(timer_cpu=cpu)
    wrapped = harness.asgi(
        Starlette(routes=[Route("/busy", busy)]),
        settings=settings,
        record_exporters=[exporter_for(collector), harness.collector],
    )
    async with client(wrapped) as c:
        await c.get("/busy")
    [record] = harness.records()
    [timer] = record.timers
    [packet] = collector.packets(1)
    assert tags_of(packet) == [{"group": "cpu"}]
    assert packet.timer_hit_count == [1]
    # Whole microseconds, as float32 on the wire.
    assert packet.timer_value[0] == pytest.approx(timer.duration_ns // 1000 / 1e6, rel=1e-6)
    assert packet.timer_value[0] >= 0.02
    if cpu:
        assert packet.timer_ru_utime[0] + packet.timer_ru_stime[0] >= 0.015
        assert packet.timer_ru_utime[0] == pytest.approx(timer.ru_utime_ns // 1000 / 1e6, rel=1e-6)
    else:
        assert packet.timer_ru_utime == packet.timer_ru_stime == [0.0]


async def test_no_header_cookie_or_query_secret_reaches_a_packet(
    harness: Harness, collector: Collector
) -> None:
    # Pinba packets carry the route (or the path, never the query) and the tags the app sets:
    # by construction, nothing from headers, cookies or the query string.
    for script_name in ("route", "path"):
        exporter = exporter_for(collector, script_name=script_name)
        wrapped = harness.asgi(app(), record_exporters=[exporter])
        async with client(wrapped) as c:
            await c.get(
                "/users/1?token=SECRET-QUERY&api_key=SECRET-KEY",
                headers={"authorization": "Bearer SECRET-AUTH", "cookie": "s=SECRET-COOKIE"},
            )
        wrapped.bridge.force_flush()
        raw = collector.raw()
        assert b"SECRET" not in raw, script_name
        assert decode(raw).script_name in ("/users/{uid}", "/users/1")


async def test_child_spans_of_other_instrumentations_are_timers(
    harness: Harness, collector: Collector
) -> None:
    async def backend(request: Any) -> Response:
        return PlainTextResponse("b")

    outgoing = httpx.AsyncClient(
        transport=httpx.ASGITransport(Starlette(routes=[Route("/b", backend)])),
        base_url="http://inventory.internal",
    )
    HTTPXClientInstrumentor().instrument_client(outgoing, tracer_provider=harness.tracer_provider)

    async def front(request: Any) -> Response:
        return PlainTextResponse((await outgoing.get("/b")).text)

    wrapped = harness.asgi(
        Starlette(routes=[Route("/front", front)]),
        record_exporters=[exporter_for(collector)],
    )
    async with client(wrapped) as c:
        await c.get("/front")
    await outgoing.aclose()
    wrapped.bridge.force_flush()
    [packet] = collector.packets(1)
    assert tags_of(packet) == [{"group": "http", "op": "GET", "server": "inventory.internal"}]


async def test_script_name_is_bounded_by_default(harness: Harness, collector: Collector) -> None:
    # No router: the path's first segment is the status the app answers.
    async def raw(scope: Any, receive: Any, send: Any) -> None:
        status = int(scope["path"].split("/")[1])
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    paths = ["/404/wp-admin.php", "/200/plain", "/301/a/", "/307/b/", "/400/c", "/405/d", "/503/e"]
    modes = {
        "route": exporter_for(collector),
        "unrouted path": exporter_for(collector, unrouted_by_path=True),
        "path": exporter_for(collector, script_name="path"),
    }
    names: dict[str, list[str]] = {}
    for mode, exporter in modes.items():
        wrapped = harness.asgi(raw, record_exporters=[exporter])
        async with client(wrapped) as c:
            for path in paths:
                await c.get(path)
        wrapped.bridge.force_flush()
        names[mode] = [packet.script_name for packet in collector.packets(len(paths))]
    assert names["route"] == [
        "<unmatched>",
        "<no route>",
        "<redirect>",
        "<redirect>",
        "<bad request>",
        "<no route>",
        "<no route>",
    ]
    assert names["unrouted path"] == paths
    assert names["path"] == paths


async def test_server_name_is_a_known_host_or_one_bounded_label(
    harness: Harness, collector: Collector
) -> None:
    async def ok(request: Any) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", ok)])
    listed = harness.asgi(
        app,
        record_exporters=[
            exporter_for(collector, allowed_hosts=(".shop.test", "api.test", "[::1]"))
        ],
    )
    hosts = [
        "shop.test",
        "www.shop.test:8000",
        "API.test",
        "evil.test",
        "x.invalid",
        "shop.test.",
        "[::1]:8000",
    ]
    async with client(listed) as c:
        for host in hosts:
            await c.get("/", headers={"host": host})
    listed.bridge.force_flush()
    assert [p.server_name for p in collector.packets(len(hosts))] == [
        "shop.test",
        ".shop.test",  # any subdomain: a client could invent them, the pattern is the label
        "api.test",
        "<other host>",
        "<other host>",
        "shop.test",
        "::1",  # Django's spelling, [::1], matches the address
    ]
    # No list: the first 16 Hosts, then one label, however many a client invents.
    unlisted = harness.asgi(app, record_exporters=[exporter_for(collector)])
    async with client(unlisted) as c:
        for index in range(40):
            await c.get("/", headers={"host": f"h{index}.test"})
    unlisted.bridge.force_flush()
    names = [p.server_name for p in collector.packets(40)]
    assert names[:16] == [f"h{index}.test" for index in range(16)]
    assert set(names[16:]) == {"<other host>"}


async def test_oversized_packets_keep_their_longest_timers(
    harness: Harness, collector: Collector
) -> None:
    async def many(request: Any) -> Response:
        for index in range(200):
            with otel_bridge.timer(group="loop", index=index, padding="x" * 20):
                if index == 150:
                    await asyncio.sleep(0.01)
        return PlainTextResponse("ok")

    exporter = exporter_for(collector, max_packet_size=1472)
    wrapped = harness.asgi(Starlette(routes=[Route("/", many)]), record_exporters=[exporter])
    async with client(wrapped) as c:
        await c.get("/")
    wrapped.bridge.force_flush()
    data = collector.raw()
    assert len(data) <= 1472
    packet = decode(data)
    kept = tags_of(packet)
    assert 10 < len(kept) < 200
    assert {"group": "loop", "index": "150", "padding": "x" * 20} in kept
    assert wrapped.bridge.health.dropped["pinba.timers_trimmed"] == 200 - len(kept)


async def test_unresolvable_collector_is_counted_and_logged_once(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = PinbaExporter([("pinba.invalid", 30002)])
    wrapped = harness.asgi(app(), record_exporters=[exporter])
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        async with client(wrapped) as c:
            for index in range(20):
                assert (await c.get(f"/users/{index}")).status_code == 200
        wrapped.bridge.force_flush()
    # Resolution is retried once per resolve interval, not per request.
    assert wrapped.bridge.health.errors["exporter.pinba.resolve"] == 1
    assert sum("pinba" in r.getMessage() for r in caplog.records) == 1


async def test_slow_dns_holds_up_only_pinba_and_is_counted_and_logged_once(
    harness: Harness,
    collector: Collector,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The collector's name takes 2 s to resolve (a DNS server that is slow to answer).
    original = socket.getaddrinfo

    def slow(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "slow.pinba.invalid":
            time.sleep(2.0)
            host = "127.0.0.1"
        return original(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    exporter = PinbaExporter([("slow.pinba.invalid", collector.port)])
    wrapped = harness.asgi(app(), record_exporters=[exporter, harness.collector])
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="otel_bridge"):
        async with client(wrapped) as c:
            for index in range(20):
                assert (await c.get(f"/users/{index}")).status_code == 200
        # The other views have every record before the name has even resolved.
        assert wrapped.bridge._worker.flush(5)
        assert len(harness.collector.records) == 20
        assert time.monotonic() - started < 2.0
        assert wrapped.bridge.force_flush(5_000)
    assert len(collector.packets(20)) == 20  # Pinba got them all, late
    assert wrapped.bridge.health.errors == {"exporter.pinba.resolve_slow": 1}
    logged = [r.getMessage() for r in caplog.records if "resolve_slow" in r.getMessage()]
    assert len(logged) == 1 and "slow.pinba.invalid took " in logged[0]
    took = re.search(r"took (\d+\.\d) s", logged[0])
    assert took is not None and 2.0 <= float(took.group(1)) < 5, logged[0]


async def test_a_bug_in_the_encoder_never_reaches_the_app(
    harness: Harness, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = exporter_for(collector)

    def broken(record: RequestRecord) -> bytes:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(exporter, "packet", broken)
    wrapped = harness.asgi(app(), record_exporters=[exporter, harness.collector])
    async with client(wrapped) as c:
        for index in range(5):
            assert (await c.get(f"/users/{index}")).status_code == 200
    assert len(harness.records()) == 5
    assert wrapped.bridge.health.errors["exporter.pinba.encode"] == 5
    assert collector.nothing_more()


async def test_closed_collector_port_is_harmless(harness: Harness) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    exporter = PinbaExporter([("127.0.0.1", closed_port)])
    wrapped = harness.asgi(app(), record_exporters=[exporter])
    async with client(wrapped) as c:
        for index in range(30):
            assert (await c.get(f"/users/{index}")).status_code == 200
            await asyncio.sleep(0.005)  # ICMP comes back between the sends
    assert wrapped.bridge.force_flush()
    # The refusal (ICMP port unreachable) is seen, on the connected socket, and counted.
    assert wrapped.bridge.health.errors["exporter.pinba.send"] >= 1


def test_settings_build_the_exporter() -> None:
    settings = otel_bridge.Settings.from_env(
        {
            "OTEL_EXPORTER_PINBA_ENDPOINT": "127.0.0.1:4000, [::1]:4001",
            "OTEL_EXPORTER_PINBA_HOSTNAME": "h1",
            "OTEL_EXPORTER_PINBA_SERVER_NAME": "shop",
            "OTEL_EXPORTER_PINBA_SCRIPT_NAME": "path",
            "OTEL_EXPORTER_PINBA_TAGS": "env=prod",
            "OTEL_EXPORTER_PINBA_MAX_PACKET_SIZE": "1472",
        }
    )
    exporter = PinbaExporter.from_settings(settings)
    assert exporter._endpoints == (("127.0.0.1", 4000), ("::1", 4001))
    assert (exporter.hostname, exporter.server_name, exporter.use_path) == ("h1", "shop", True)
    assert (exporter.tags, exporter.max_packet_size) == ({"env": "prod"}, 1472)


@pytest.mark.parametrize(
    "raw", ["", "host", "host:0", "host:70000", "[::1:80", " , ", ",".join(["h:1"] * 9)]
)
def test_bad_endpoints_are_refused_at_startup(raw: str) -> None:
    if not raw.strip(" ,"):
        with pytest.raises(otel_bridge.ConfigError, match="OTEL_EXPORTER_PINBA_ENDPOINT"):
            otel_bridge.Settings.from_env({"OTEL_EXPORTER_PINBA_ENDPOINT": raw or ","})
        return
    with pytest.raises(otel_bridge.ConfigError, match=r"host:port or \[ipv6\]:port"):
        otel_bridge.Settings.from_env({"OTEL_EXPORTER_PINBA_ENDPOINT": raw})
