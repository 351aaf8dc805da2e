"""Jobs: `ScriptMonitor`, one Pinba packet per run of a script, a cron task or a consumer loop.

An entry point of its own, beside the ASGI and WSGI wrappers: it drives the engine for work
that is not an HTTP request.

The job is recorded like a request — an OTel span named after the job, `otel_bridge.timer()`
blocks and any child spans as timers, its CPU time — and sent with `script_name` = the job's
name, `status` 0 (1 if it raised) and no `schema`, as php-pinba sends CLI scripts.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any, TypeVar

from otel_bridge._decorate import decorate
from otel_bridge.bridge import Bridge, RequestBuilder
from otel_bridge.config import Settings
from otel_bridge.exporters.pinba._exporter import PinbaExporter
from otel_bridge.tags import tag

__all__ = ["ScriptMonitor"]

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.Lock()
_default: Bridge | None = None


def _default_bridge() -> Bridge:
    # One bridge per process for jobs, built on first use from the environment, sending to
    # OTEL_EXPORTER_PINBA_ENDPOINT, flushed at exit.
    global _default
    with _lock:
        if _default is None:
            settings = Settings.from_env()
            bridge = Bridge(settings, exporters=[PinbaExporter.from_settings(settings)])
            atexit.register(bridge.shutdown, 5_000)
            _default = bridge
        return _default


class ScriptMonitor:
    """Time a job and send one Pinba packet per run.

    Args:
        script_name: the job's name, used as `script_name` (bounded: not per-run ids).
        tags: request tags of every run.
        bridge: the bridge to record with (default: one per process, from the environment).

    Use as ``with ScriptMonitor("import"):`` or as a decorator (one packet per call). Never
    raises on its own account; the job's exceptions pass through unchanged.
    """

    def __init__(
        self,
        script_name: str,
        *,
        tags: Mapping[str, object] | None = None,
        bridge: Bridge | None = None,
    ) -> None:
        self.script_name = script_name
        self.tags = dict(tags or {})
        self._bridge = bridge
        # Runs in progress, per thread and per asyncio task (a context variable, not a
        # thread-local: concurrent tasks on one thread must not pop each other's runs).
        self._runs: ContextVar[tuple[RequestBuilder, ...]] = ContextVar(
            f"otel_bridge.pinba.monitor.{id(self)}", default=()
        )

    def __enter__(self) -> ScriptMonitor:
        try:
            bridge = self._bridge or _default_bridge()
            builder = RequestBuilder(bridge, "job")
            bridge.begin_job(builder, self.script_name)
            if self.tags:
                tag(**self.tags)
            self._runs.set((*self._runs.get(), builder))
        except Exception as exc:  # noqa: BLE001 - monitoring must not stop the job
            if self._bridge is not None:
                self._bridge.health.error("pinba.monitor", exc)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        runs = self._runs.get()
        if not runs:
            return
        builder = runs[-1]
        self._runs.set(runs[:-1])
        builder.exception = exc
        builder.bridge.finish(builder)

    def __call__(self, func: F) -> F:
        return decorate(func, lambda: self)
