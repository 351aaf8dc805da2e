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


def test_a_users_own_view_enters_like_the_built_in_ones() -> None:
    """A view is a function of ViewContext returning ViewParts, for the user's as for ours:
    its consumer gets the records, its start runs once, it sees the settings and the app."""
    import asyncio
    from typing import Any

    import httpx
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from otel_bridge.testing import RecordCollector

    seen: list[otel_bridge.ViewContext] = []
    collector = RecordCollector()

    def my_view(context: otel_bridge.ViewContext) -> otel_bridge.ViewParts:
        seen.append(context)
        return otel_bridge.ViewParts(consumers=[collector], start=[lambda: seen.append(context)])

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = Starlette(routes=[Route("/hello/{name}", hello)])
    wrapped: Any = otel_bridge.instrument(
        app,
        exporters="none",
        views=[my_view],
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(),
    )

    async def drive() -> None:
        transport = httpx.ASGITransport(wrapped)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/hello/ann")

    asyncio.run(drive())
    wrapped.bridge.force_flush()
    wrapped.bridge.shutdown()
    assert [record.route for record in collector.records] == ["/hello/{name}"]
    assert len(seen) == 2 and seen[0] is seen[1], "built once, started once"
    assert seen[0].app is app and seen[0].settings.exporters == ()
