from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from otel_bridge.exporters.pinba._packet import PacketFields, PacketTimer, assemble
from otel_bridge.exporters.pinba.collector import Report


def packet(script: str, seconds: float, status: int = 200, timers: int = 1) -> bytes:
    fields = PacketFields("h1", "srv", script, 1, 2048, 0, 0, seconds, 0.001, 0.0, status, "http")
    return assemble(
        fields,
        {},
        [PacketTimer((("group", "db"), ("op", "select")), seconds / 2, 2)] * min(timers, 1),
    )


def test_report_aggregates_per_script_status_and_timer_tags() -> None:
    report = Report()
    for index in range(100):
        report.add_datagram(packet("/users/{uid}", (index + 1) / 1000))
    report.add_datagram(packet("/error", 0.5, status=500, timers=0))
    report.add_datagram(b"\x0a\xff")  # garbage
    text = report.render(now=report.started + 10)
    assert "101 packets from 1 host(s), 1 malformed" in text
    users = next(line for line in text.splitlines() if line.startswith("/users/{uid}"))
    columns = users.split()
    assert columns[1:3] == ["100", "10.0"]
    assert float(columns[3]) == pytest.approx(50.0, abs=1.0)  # p50 ms
    assert float(columns[5]) == pytest.approx(99.0, abs=1.0)  # p99 ms
    assert "by status: 200: 100  500: 1" in text
    timer = next(line for line in text.splitlines() if line.startswith("group=db,op=select"))
    assert timer.split()[1] == "200"  # 100 packets x 2 hits


@pytest.mark.integration
def test_pinba_listen_prints_reports_and_stops_on_ctrl_c() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_bridge.cli",
            "pinba",
            "listen",
            "--port",
            str(port),
            "--interval",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "listening on 127.0.0.1:" in process.stdout.readline()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for _ in range(3):
                sender.sendto(packet("/checkout", 0.02), ("127.0.0.1", port))
        time.sleep(1.2)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "3 packets from 1 host(s)" in out
    assert "/checkout" in out and "group=db,op=select" in out


def test_pinba_listen_reports_a_busy_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "otel_bridge.cli", "pinba", "listen", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
