"""A real OpenTelemetry Collector (built from its Go modules by scripts/otelcol, cached in
.cache/otelcol) on 127.0.0.1: the OTLP receiver (gRPC and HTTP) writing each signal to a JSON
lines file. It can be stopped (down) or frozen with SIGSTOP (hung: the port accepts, nothing
answers), as a Collector in trouble is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.integration.servers import ROOT, end, free_port, wait_accepting

CONFIG = ROOT / "collector" / "test-config.yaml"


def binary() -> str:
    """The Collector's path, built first if missing (about 2 minutes, once per machine)."""
    built = subprocess.run(
        [str(ROOT / "scripts" / "otelcol")], capture_output=True, text=True, check=True
    )
    return built.stdout.strip().splitlines()[-1]


class Collector:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def endpoint(self) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for OTLP/HTTP."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "OTELCOL_GRPC_PORT": str(self.grpc_port),
            "OTELCOL_HTTP_PORT": str(self.http_port),
            "OTELCOL_OUT": str(self.out),
        }
        self.process = subprocess.Popen(
            [binary(), f"--config={CONFIG}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_accepting(self.process, self.http_port, 30)
        wait_accepting(self.process, self.grpc_port, 30)

    def stop(self) -> None:
        """Down: the ports close."""
        process = self.process
        if process is None:
            return
        self.process = None
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a frozen one must be able to exit
        end(process, timeout=5)

    def freeze(self) -> None:
        """Hung: the kernel still accepts connections; the Collector never answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def read(self, signal_name: str) -> list[dict[str, Any]]:
        """Every OTLP/JSON request the Collector wrote for `signal_name` (traces, metrics,
        logs)."""
        path = self.out / f"{signal_name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def spans(self) -> list[dict[str, Any]]:
        return [
            span
            for request in self.read("traces")
            for resource in request.get("resourceSpans", ())
            for scope in resource.get("scopeSpans", ())
            for span in scope.get("spans", ())
        ]

    def log_records(self) -> list[dict[str, Any]]:
        return [
            record
            for request in self.read("logs")
            for resource in request.get("resourceLogs", ())
            for scope in resource.get("scopeLogs", ())
            for record in scope.get("logRecords", ())
        ]

    def metric_points(self, name: str) -> list[dict[str, Any]]:
        found = []
        for request in self.read("metrics"):
            for resource in request.get("resourceMetrics", ()):
                for scope in resource.get("scopeMetrics", ()):
                    for metric in scope.get("metrics", ()):
                        if metric.get("name") == name:
                            for kind in ("histogram", "sum", "gauge"):
                                found += metric.get(kind, {}).get("dataPoints", [])
        return found


@contextmanager
def collector(out: Path) -> Iterator[Collector]:
    running = Collector(out)
    running.start()
    try:
        yield running
    finally:
        running.stop()
