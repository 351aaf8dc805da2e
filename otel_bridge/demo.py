"""The demo behind `otel-bridge demo` (`make demo`): a real Starlette app served by uvicorn.

Every view that exists is on, with embedded defaults; a background thread sends a little
traffic so there is something to look at straight away; each finished request is printed as
one line, the way the bridge sees it.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket
import sys
import threading
import time
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

import otel_bridge
from otel_bridge.config import VIEW_NAMES, Settings

__all__ = ["build_app", "run"]

PINBA_PORT = 30002
PAGES = (
    "/",
    "/users/42",
    "/users/7",
    "/search?q=otel",
    "/stream",
    "/slow",
    "/error",
    "/stuck",
)


@otel_bridge.healthcheck
async def index(request: Request) -> Response:
    links = "".join(f'<li><a href="{page}">{page}</a></li>' for page in PAGES)
    return HTMLResponse(f"<h1>otel-bridge demo</h1><ul>{links}</ul>")


async def user(request: Request) -> Response:
    uid = request.path_params["uid"]
    otel_bridge.wide_event.set(user_id=uid)
    otel_bridge.tag(plan="pro" if uid % 2 else "free")
    with otel_bridge.timer(group="db", op="select", table="users"):
        await asyncio.sleep(random.uniform(0.001, 0.004))
    with otel_bridge.timer(group="cache", op="set"):
        await asyncio.sleep(0.0005)
    return PlainTextResponse(f"user {uid}\n")


async def search(request: Request) -> Response:
    with otel_bridge.timer(group="search", engine="demo"):
        await asyncio.sleep(random.uniform(0.005, 0.02))
    return PlainTextResponse(f"results for {request.query_params.get('q', '')!r}\n")


async def stuck(request: Request) -> Response:
    # Past the demo's 1 s wide-event deadline: its `timeout` event appears while it runs.
    otel_bridge.wide_event.set(waiting_for="a very slow partner API")
    with otel_bridge.timer(group="partner", op="quote"):
        await asyncio.sleep(1.5)
    return PlainTextResponse("finally\n")


async def slow(request: Request) -> Response:
    for step in ("fetch", "render"):
        with otel_bridge.timer(group="slow", step=step):
            await asyncio.sleep(0.15)
    return PlainTextResponse("slow, but done\n")


async def stream(request: Request) -> Response:
    async def chunks() -> Any:
        for index in range(5):
            await asyncio.sleep(0.02)
            yield f"chunk {index}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


async def error(request: Request) -> Response:
    raise RuntimeError("a deliberate error, to show how failures are recorded")


def build_app() -> Starlette:
    users = otel_bridge.healthcheck(
        Route("/users/{uid:int}", user, name="user"),
        path_params={"uid": 42},
        schedule="every 5 minutes",
        assertions=["response.code = 200", "response.body contains user", "response.time < 1s"],
    )
    return Starlette(
        routes=[
            Route("/", index, name="index"),
            users,
            Route("/search", search),
            Route("/slow", slow),
            Route("/stuck", stuck),
            Route("/stream", stream),
            Route("/error", error),
        ]
    )


def _traffic(base: str, stop: threading.Event) -> None:
    # Wait for the server, send a burst over every page, then a request every few seconds.
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(100):
            try:
                client.get("/")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        for page in (*PAGES[1:], *PAGES[1:5]):  # /stuck once: a deliberate timeout
            if stop.is_set():
                return
            try:
                client.get(page, headers={"connection": "close"})
            except httpx.HTTPError:
                pass
        while not stop.wait(3):
            try:
                client.get(random.choice(PAGES[1:5]))
            except httpx.HTTPError:
                pass


def _pinba_collector(stop: threading.Event) -> str:
    """Run the development Pinba collector on its default port, if that port is free."""
    from otel_bridge.exporters.pinba.collector import listen

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", PINBA_PORT))
        except OSError:
            return f"port {PINBA_PORT} is taken: packets go to whatever listens there"
    threading.Thread(
        target=listen,
        kwargs={"port": PINBA_PORT, "interval": 10.0, "stop": stop.is_set},
        daemon=True,
    ).start()
    return f"a collector on 127.0.0.1:{PINBA_PORT} prints a report every 10 s"


def _show_healthchecks(app: Starlette) -> None:
    """The Cronitor monitors the demo's routes produce, as a dry run (nothing is sent)."""
    from otel_bridge.exporters.cronitor import monitors_from_app

    monitors = monitors_from_app(
        app, public_url="https://demo.example.com", service="otel-bridge-demo"
    )
    print("cronitor: the routes marked as healthchecks give these monitors (dry run):")
    for monitor in monitors:
        print(f"  {monitor['key']:32} {monitor['schedule']:18} {monitor['request']['url']}")
        print(f"  {'':32} assert: {', '.join(monitor['assertions'])}")
    print(
        "  sync them in a release step: otel-bridge healthchecks sync --app module:app "
        "(CRONITOR_API_KEY, OTEL_EXPORTER_CRONITOR_PUBLIC_URL)\n",
        flush=True,
    )


def run(host: str = "127.0.0.1", port: int = 8000, traffic: bool = True) -> int:
    """Serve the demo until Ctrl-C; returns the exit status."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                print(f"port {port} on {host} is taken: try --port 8001", file=sys.stderr)
                return 1
            raise
    settings = Settings.from_env().replace(
        exporters=list(VIEW_NAMES),
        pinba_endpoint=f"127.0.0.1:{PINBA_PORT}",
        wide_events_sink="stdout",
        wide_events_format="logfmt",
        wide_events_timeout=1.0,
    )
    demo_app = build_app()
    app = otel_bridge.instrument(demo_app, settings=settings, service_name="otel-bridge-demo")
    base = f"http://{host}:{port}"
    stop = threading.Event()
    pinba_note = _pinba_collector(stop)
    print(
        f"otel-bridge demo on {base}  (Ctrl-C stops it)\n"
        f"  views on: {', '.join(VIEW_NAMES)}\n"
        f"  pinba:    packets to 127.0.0.1:{PINBA_PORT}; {pinba_note}\n"
        f"  expvar:   {base}/debug/vars   dashboard: {base}/debug/vars/ui\n"
        f"            terminal view: otel-bridge vars {base}\n"
        f"  try:      {base}/users/42   {base}/slow   {base}/error\n"
        "  wide events: one line per request below (logfmt; JSON Lines by default)\n",
        flush=True,
    )
    _show_healthchecks(demo_app)
    if traffic:
        threading.Thread(target=_traffic, args=(base, stop), daemon=True).start()
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn shuts down gracefully on Ctrl-C, then re-raises it; we are done.
        pass
    finally:
        stop.set()
    print("otel-bridge demo stopped", flush=True)
    return 0
