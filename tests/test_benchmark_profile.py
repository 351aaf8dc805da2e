"""The benchmark profile (benchmarks/profile.py) puts each py-spy sample in the component that
spent it, and leaves start-up out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from benchmarks.profile import COMPONENTS, classify, profile, shares

SITE = "/venv/lib/python3.11/site-packages"
CONTRIB = "opentelemetry/instrumentation/asgi/__init__.py"
APPS = "/w/benchmarks/apps.py"
MAIN = "thread (1): MainThread"
EXPORT = "thread (2): otel-bridge-export"
LOOP = [
    "<module> (/w/benchmarks/inprocess.py:124)",
    "run_asgi (/w/benchmarks/inprocess.py:71)",
    "run (/usr/lib/python3.11/asyncio/runners.py:190)",
]


def frame(function: str, path: str) -> str:
    return f"{function} ({path}:1)"


@pytest.mark.parametrize(
    ("stack", "component"),
    [
        # The innermost frame with a component decides: the SDK called by the bridge is SDK.
        (
            [
                EXPORT,
                frame("Bridge._export", "/w/otel_bridge/bridge.py"),
                frame("Histogram.record", f"{SITE}/opentelemetry/sdk/metrics/instrument.py"),
            ],
            "OpenTelemetry SDK + API",
        ),
        # A stdlib frame has none: the JSON encoder counts for the view that called it.
        (
            [
                EXPORT,
                frame("Bridge._export", "/w/otel_bridge/bridge.py"),
                frame("EventBuilder.line", "/w/otel_bridge/exporters/wide_events/_event.py"),
                frame("JSONEncoder.encode", "/usr/lib/python3.11/json/encoder.py"),
            ],
            "wide events",
        ),
        (
            [EXPORT, frame("PinbaExporter.export", "/w/otel_bridge/exporters/pinba/e.py")],
            "Pinba",
        ),
        (
            [MAIN, *LOOP, frame("OtelBridgeASGIMiddleware.__call__", "/w/otel_bridge/asgi.py")],
            "otel_bridge core",
        ),
        (
            [
                MAIN,
                *LOOP,
                frame("OpenTelemetryMiddleware.__call__", f"{SITE}/{CONTRIB}"),
                frame("Starlette.__call__", f"{SITE}/starlette/applications.py"),
            ],
            "app",
        ),
        ([MAIN, *LOOP], "driver + event loop"),
        ([EXPORT, frame("Thread.run", "/usr/lib/python3.11/threading.py")], "other"),
        # Start-up: imports, the harness building the app, a thread with no Python frame.
        (
            [
                MAIN,
                "<module> (/w/benchmarks/inprocess.py:124)",
                frame("_find_and_load", "<frozen importlib._bootstrap>"),
                frame("<module>", "/w/otel_bridge/bridge.py"),
            ],
            None,
        ),
        ([MAIN, frame("cell", "/w/benchmarks/inprocess.py"), frame("build", APPS)], None),
        ([MAIN], None),
    ],
)
def test_a_sample_counts_for_its_innermost_component(
    stack: list[str], component: str | None
) -> None:
    assert classify(stack) == component


def test_shares_add_up_over_the_measured_samples() -> None:
    sdk = f"{SITE}/opentelemetry/sdk/trace/__init__.py"
    raw = "\n".join(
        [
            f"{EXPORT};{frame('end', sdk)} 30",
            f"{MAIN};{';'.join(LOOP)};{frame('begin', '/w/otel_bridge/bridge.py')} 10",
            f"{MAIN};{frame('_find_and_load', '<frozen importlib._bootstrap>')} 500",
            "garbage line",
        ]
    )
    found = shares(raw)
    assert found["samples"] == 40
    assert found["OpenTelemetry SDK + API"] == 0.75 and found["otel_bridge core"] == 0.25
    assert sum(found[name] for name in COMPONENTS) == pytest.approx(1.0)
    with pytest.raises(RuntimeError, match="no sample"):
        shares(f"{MAIN};{frame('_find_and_load', '<frozen importlib._bootstrap>')} 5")


@pytest.mark.skipif(
    shutil.which("py-spy") is None
    and not (Path(__file__).parents[1] / ".venv/bin/py-spy").exists(),
    reason="py-spy is not installed (the bench dependency group has it)",
)
def test_a_real_profile_sees_the_bridge_and_its_views() -> None:
    try:
        found = profile("wsgi", "bridge_all", 3_000)
    except RuntimeError as exc:
        if "ermission" in str(exc) or "ptrace" in str(exc):
            pytest.skip(f"this machine does not let py-spy read a child process: {exc}")
        raise
    assert found["samples"] > 20
    assert found["otel_bridge core"] > 0 and found["OpenTelemetry SDK + API"] > 0
    assert found["contrib middleware"] == 0 and found["floor"] == 0
