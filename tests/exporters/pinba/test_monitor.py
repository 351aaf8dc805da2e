from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import otel_bridge
from otel_bridge.bridge import Bridge
from otel_bridge.jobs import ScriptMonitor
from tests.conftest import Harness

from .test_exporter import Collector, exporter_for, request_tags_of, tags_of


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.sock.close()


@pytest.fixture
def bridge(harness: Harness, collector: Collector) -> Iterator[Bridge]:
    b = Bridge(
        otel_bridge.Settings(exporters=()),
        tracer_provider=harness.tracer_provider,
        meter_provider=harness.meter_provider,
        exporters=[exporter_for(collector)],
    )
    yield b
    b.shutdown()


def test_each_run_sends_one_packet_with_its_timers(bridge: Bridge, collector: Collector) -> None:
    monitor = ScriptMonitor("nightly-import", tags={"queue": "emails"}, bridge=bridge)
    for run in range(2):
        with monitor:
            otel_bridge.tag(run=run)
            with otel_bridge.timer(group="db", op="insert"):
                pass
    bridge.force_flush()
    first, second = collector.packets(2)
    assert (first.script_name, first.status, first.schema) == ("nightly-import", 0, "")
    assert request_tags_of(first) == {"queue": "emails", "run": "0"}
    assert request_tags_of(second) == {"queue": "emails", "run": "1"}
    assert tags_of(first) == [{"group": "db", "op": "insert"}]
    assert first.request_time > 0


def test_a_failing_run_is_sent_with_status_1_and_the_error_passes_through(
    bridge: Bridge, collector: Collector, harness: Harness
) -> None:
    @ScriptMonitor("flaky", bridge=bridge)
    def job() -> None:
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        job()
    bridge.force_flush()
    [packet] = collector.packets(1)
    assert (packet.script_name, packet.status) == ("flaky", 1)
    assert harness.metric_points("http.server.request.duration") == [], "a job is no request"
    [span] = harness.spans.get_finished_spans()
    assert span.name == "flaky"


def test_concurrent_async_runs_keep_their_own_timers(bridge: Bridge, collector: Collector) -> None:
    monitor = ScriptMonitor("consumer", bridge=bridge)

    @monitor
    async def consume(message: int) -> int:
        with otel_bridge.timer(message=message):
            await asyncio.sleep(0.001 * (3 - message))
        return message

    async def main() -> list[int]:
        return await asyncio.gather(*(consume(m) for m in range(3)))

    assert asyncio.run(main()) == [0, 1, 2]
    bridge.force_flush()
    packets = collector.packets(3)
    assert sorted(tags_of(p)[0]["message"] for p in packets) == ["0", "1", "2"]
    assert all(len(tags_of(p)) == 1 for p in packets)


def test_the_old_paths_name_the_same_script_monitor() -> None:
    """`ScriptMonitor` moved to `otel_bridge.jobs`; the README's old import still works."""
    import otel_bridge.exporters.pinba as pinba

    assert pinba.ScriptMonitor is ScriptMonitor
    assert otel_bridge.ScriptMonitor is ScriptMonitor
    with pytest.raises(AttributeError):
        _ = pinba.NoSuchThing
