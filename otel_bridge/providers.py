"""Finding the OpenTelemetry providers a bridge records into (or creating them), once, and
keeping OpenTelemetry's flush contract on the meter side: every collection first records the
requests that finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from otel_bridge._compiled import describe
from otel_bridge._compiled import state as compiled
from otel_bridge._foreign_spans import intercept
from otel_bridge._health import Health
from otel_bridge._otel import (
    CREATED,
    add_span_processor_first,
    pending,
    resolve_meter_provider,
    resolve_tracer_provider,
)
from otel_bridge._spans import SpanPlan
from otel_bridge._timer_plan import TimerPlan
from otel_bridge._version import __version__
from otel_bridge._worker import run_bounded
from otel_bridge.builder import TIMER_SCOPE
from otel_bridge.child_spans import RecordSpanProcessor
from otel_bridge.config import Settings

__all__ = ["Providers"]

# How long a collection waits for the finished requests to be recorded, at most.
COLLECT_WAIT_MS = 5_000


class Providers:
    """The provider part of `Bridge` (a mixin)."""

    settings: Settings
    health: Health
    processor: RecordSpanProcessor
    resource: Mapping[str, AttributeValue]
    expvar: Any
    bound: bool
    _bind_lock: threading.Lock
    _given: tuple[trace.TracerProvider | None, metrics.MeterProvider | None, Sequence[MetricReader]]
    tracer_provider: TracerProvider | None
    meter_provider: metrics.MeterProvider | None
    readers_attached: bool
    measure_cpu: bool
    # How timers make their spans (None: the SDK's), and whether each one's CPU is measured.
    timer_plan: TimerPlan | None = None
    measure_timer_cpu = False
    max_timers = 512

    if TYPE_CHECKING:  # what Bridge's other parts provide

        def _create_metrics(self, meter: metrics.Meter, body_sizes: bool) -> None: ...

        def drain(self, timeout_millis: float = ...) -> bool: ...

    def timer_core(self) -> str:
        """What times this bridge's timers, as `/debug/vars` shows it (otel_bridge._compiled)."""
        if not self.bound:
            return "not bound yet"
        return describe(self.timer_plan, self.settings.pure_python)

    def bind(self) -> None:
        """Find the OpenTelemetry providers (or create them) and start recording into them;
        done once, at the first request at the latest. Never raises past a ConfigError."""
        with self._bind_lock:
            if self.bound:
                return
            try:
                self._bind()
            except Exception as exc:  # noqa: BLE001 - the request goes on, unrecorded by OTel
                self.health.error("bridge.providers", exc)
                self._given = (trace.NoOpTracerProvider(), metrics.NoOpMeterProvider(), ())
                self._bind()
            self.bound = True

    def _bind(self) -> None:
        settings = self.settings
        tracer_provider, meter_provider, metric_readers = self._given
        sdk_provider = resolve_tracer_provider(settings, tracer_provider, self.health)
        self.tracer_provider = sdk_provider
        provider = sdk_provider or tracer_provider or trace.get_tracer_provider()
        self.tracer = provider.get_tracer("otel_bridge", __version__)
        self.timer_tracer = provider.get_tracer(TIMER_SCOPE, __version__)
        # How each request's server span is made: the SDK's, or built at its end (_spans).
        self._plan = SpanPlan(sdk_provider, self.tracer, self.processor)
        self.measure_timer_cpu = self.measure_cpu and settings.timer_cpu
        self.max_timers = settings.max_timers
        if sdk_provider is not None:
            self.timer_plan = TimerPlan.of(
                sdk_provider,
                self.timer_tracer,
                self.measure_timer_cpu,
                compiled=compiled.compiled and not settings.pure_python,
            )
            if self.timer_plan is not None:
                # Other instrumentations' spans in a request at a timer's price.
                intercept()
        if sdk_provider is not None:
            # First among the provider's processors: its shutdown() ends the requests still
            # queued before the others (a BatchSpanProcessor…) shut down.
            add_span_processor_first(sdk_provider, self.processor)
            self.resource = MappingProxyType(dict(sdk_provider.resource.attributes))
        self.meter_provider, self.readers_attached = resolve_meter_provider(
            settings, meter_provider, metric_readers, self.health
        )
        meter = self.meter_provider.get_meter("otel_bridge", __version__)
        self._create_metrics(meter, settings.body_size_metrics)
        # Every collection (a reader's force_flush, a periodic export, shutdown) first
        # records the requests that finished: their metrics are made on the export thread.
        meter.create_observable_gauge(
            "otel_bridge.export.pending",
            callbacks=[self._drain_for_collection],
            description="Never reported: collecting it records the finished requests first.",
        )
        if self.expvar is not None:
            self.expvar.reader_attached = self.readers_attached

    def _drain_for_collection(self, options: CallbackOptions) -> Iterable[Observation]:
        self.drain(min(options.timeout_millis, COLLECT_WAIT_MS))
        return ()

    def _close_providers(self, deadline: float, final: bool) -> None:
        # The spans the worker ended sit in the providers' batch processors. Servers such as
        # uvicorn re-raise SIGTERM after a graceful shutdown, so atexit hooks (where the SDK
        # flushes) never run: deliver here, while the process is still ours. In parallel and
        # bounded: the SDK's flush ignores its timeout, and an exporter retries for as long as
        # its Collector does not answer. Shut down only what otel_bridge created.
        seen: list[Any] = []
        calls: list[tuple[str, Any, Callable[[], object]]] = []
        for provider in (self.tracer_provider, self.meter_provider, *CREATED):
            if provider is None or any(provider is other for other in seen):
                continue
            seen.append(provider)
            kind = type(provider).__name__
            if provider not in CREATED:
                calls.append((f"{kind}.force_flush", provider, provider.force_flush))
            elif final:
                calls.append((f"{kind}.shutdown", provider, provider.shutdown))
            else:
                calls.append((f"{kind}.force_flush", provider, provider.force_flush))
        outcomes = run_bounded([call for _, _, call in calls], deadline - time.monotonic())
        for (label, provider, _), outcome in zip(calls, outcomes, strict=True):
            if isinstance(outcome, TimeoutError):
                lost = pending(provider)
                if lost:
                    self.health.drop(f"shutdown.{label}", lost)
                queued = f" ({lost} queued)" if lost is not None else ""
                outcome = TimeoutError(
                    f"{label} did not finish within the shutdown bound: what it had not sent "
                    f"yet{queued} is lost"
                )
            if outcome is not None:
                self.health.error(f"bridge.shutdown.{label}", outcome)
