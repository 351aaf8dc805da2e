"""No cross-talk between concurrent requests, in any view: hypothesis draws, per request, how
many timers it opens (with which tags), which request tags and wide-event fields it sets and
where it yields; 200 of them run at once on one event loop, and again on a WSGI server with 32
threads. Every record, wide event and Pinba packet must carry exactly its own request's data."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import otel_bridge
from otel_bridge.exporters.pinba._proto import decode
from tests.conftest import make_harness
from tests.exporters.pinba.test_exporter import request_tags_of, tags_of

Spec = dict[str, Any]

specs = st.lists(
    st.fixed_dictionaries(
        {
            "timers": st.lists(st.sampled_from(["db", "cache", "http"]), max_size=4),
            "tag": st.text(st.characters(min_codepoint=97, max_codepoint=122), max_size=6),
            "field": st.integers(0, 10**6),
            "pause": st.lists(st.booleans(), min_size=4, max_size=4),
        }
    ),
    min_size=200,
    max_size=200,
)
PROPERTY = settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))


def expected(n: int, spec: Spec) -> tuple[list[dict[str, str]], dict[str, str]]:
    timers = [{"group": group, "op": "op", "req": str(n)} for group in spec["timers"]]
    return timers, {"req": str(n), "t": spec["tag"]}


def check_views(
    specs_: list[Spec], records: list[Any], events: list[dict[str, Any]], packets: list[Any]
) -> None:
    assert len(records) == len(events) == len(packets) == len(specs_)
    for record in records:
        n = int(record.path.rsplit("/", 1)[1])
        timers, tags = expected(n, specs_[n])
        assert [dict(t.tags) for t in record.timers] == timers
        assert dict(record.tags) == tags
        assert dict(record.fields) == {"n": n, "value": specs_[n]["field"]}
    for event in events:
        n = int(event["url.path"].rsplit("/", 1)[1])
        assert (event["app.n"], event["app.value"]) == (n, specs_[n]["field"])
        assert event.get("timers.count", 0) == len(specs_[n]["timers"])
    for packet in packets:
        tags = request_tags_of(packet)
        n = int(tags["req"])
        timers, expected_tags = expected(n, specs_[n])
        assert tags == expected_tags
        # Pinba merges timers with identical tags; compare the distinct tag sets.
        distinct = {tuple(sorted(t.items())) for t in timers}
        assert {tuple(sorted(t.items())) for t in tags_of(packet)} == distinct


class Views:
    """Every view on, reading what they produced back."""

    def __init__(self, tmp: Path) -> None:
        self.events = tmp / f"events-{time.monotonic_ns()}.jsonl"
        self.pinba = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.pinba.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
        except OSError:
            self.pinba.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.pinba.bind(("127.0.0.1", 0))
        self.pinba.settimeout(5)
        self.settings = otel_bridge.Settings(exporters=("expvar", "pinba", "wide_events")).replace(
            wide_events_sink=f"file:{self.events}",
            pinba_endpoint=f"127.0.0.1:{self.pinba.getsockname()[1]}",
        )

    def read(self, count: int) -> tuple[list[dict[str, Any]], list[Any]]:
        packets = [decode(self.pinba.recv(65536)) for _ in range(count)]
        self.pinba.close()
        events = [json.loads(line) for line in self.events.read_text().splitlines()]
        return events, packets


def test_200_concurrent_asyncio_requests_keep_their_own_data(tmp_path: Path) -> None:
    @PROPERTY
    @given(drawn=specs)
    def check(drawn: list[Spec]) -> None:
        harness = make_harness()
        views = Views(tmp_path)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            n = int(scope["path"].rsplit("/", 1)[1])
            spec = drawn[n]
            otel_bridge.tag(req=str(n))
            for index, group in enumerate(spec["timers"]):
                async with otel_bridge.timer(group=group, op="op", req=str(n)):
                    if spec["pause"][index]:
                        await asyncio.sleep(0)
            otel_bridge.wide_event.set(n=n)
            if spec["pause"][3]:
                await asyncio.sleep(0.001)
            otel_bridge.tag(t=spec["tag"])
            otel_bridge.wide_event.set(value=spec["field"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(n).encode()})

        wrapped = harness.asgi(app, settings=views.settings)

        async def main() -> list[str]:
            transport = httpx.ASGITransport(wrapped)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                responses = await asyncio.gather(*(client.get(f"/r/{n}") for n in range(200)))
            return [r.text for r in responses]

        assert asyncio.run(main()) == [str(n) for n in range(200)]
        records = harness.records()
        wrapped.bridge.shutdown()
        check_views(drawn, records, *views.read(200))

    check()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def test_a_32_thread_wsgi_server_keeps_each_requests_data(tmp_path: Path) -> None:
    @PROPERTY
    @given(drawn=specs)
    def check(drawn: list[Spec]) -> None:
        harness = make_harness()
        views = Views(tmp_path)
        barrier = threading.Barrier(8, timeout=30)

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            n = int(environ["PATH_INFO"].rsplit("/", 1)[1])
            spec = drawn[n]
            otel_bridge.tag(req=str(n))
            for index, group in enumerate(spec["timers"]):
                with otel_bridge.timer(group=group, op="op", req=str(n)):
                    if spec["pause"][index]:
                        time.sleep(0)
            otel_bridge.wide_event.set(n=n)
            if n < 8:
                barrier.wait()  # eight requests surely in flight together
            otel_bridge.tag(t=spec["tag"])
            otel_bridge.wide_event.set(value=spec["field"])
            start_response("200 OK", [("content-type", "text/plain")])
            return [str(n).encode()]

        wrapped = harness.wsgi(app, settings=views.settings)
        server = make_server(
            "127.0.0.1", 0, wrapped, server_class=_ThreadingServer, handler_class=_Quiet
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with ThreadPoolExecutor(32) as pool:
                texts = list(
                    pool.map(lambda n: httpx.get(f"{base}/r/{n}", timeout=30).text, range(200))
                )
        finally:
            server.shutdown()
            server.server_close()
        assert texts == [str(n) for n in range(200)]
        records = harness.records()
        wrapped.bridge.shutdown()
        check_views(drawn, records, *views.read(200))

    check()
