from __future__ import annotations

import otel_bridge


def test_all_lists_exactly_the_public_names_sorted() -> None:
    public = {
        name
        for name, value in vars(otel_bridge).items()
        if not name.startswith("_")
        and not isinstance(value, type(otel_bridge))
        and name != "annotations"  # the __future__ import
    }
    assert otel_bridge.__all__ == sorted(public)


def test_importing_starts_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import threading, otel_bridge, otel_bridge.testing; "
        "from opentelemetry import trace; "
        "assert threading.active_count() == 1, threading.enumerate(); "
        "assert type(trace.get_tracer_provider()).__name__ == 'ProxyTracerProvider'; "
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"OTEL_BRIDGE_QUEUE_SIZE": "not-a-number", "PATH": ""},
    )
    assert result.stdout.strip() == "ok", result.stderr
