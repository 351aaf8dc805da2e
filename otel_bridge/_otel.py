"""Finding or creating the OpenTelemetry providers, and the record-everything sampler.

If the process already has SDK providers (set up by `opentelemetry-instrument`, or by the app
itself to export OTLP to a Collector), otel_bridge adds its span processor to them and never
replaces them. Otherwise it creates SDK providers from the settings, sets them as the globals
so other instrumentations (httpx, psycopg…) produce child spans, and attaches the exporters
named by `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    _get_from_env_or_default,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otel_bridge._context import current as _current
from otel_bridge._counted import CountedLogExporter, CountedMetricExporter, CountedSpanExporter
from otel_bridge._health import Health
from otel_bridge.config import Settings
from otel_bridge.errors import ConfigError

__all__ = [
    "RecordAllSampler",
    "remove_span_processor",
    "resolve_meter_provider",
    "resolve_tracer_provider",
]

logger = logging.getLogger("otel_bridge")


class RecordAllSampler(Sampler):
    """Wraps a sampler so that a DROP inside a request becomes RECORD_ONLY.

    The local views must see every request and every child span, while exporters that only
    take sampled spans (BatchSpanProcessor checks the sampled flag) still export the sample the
    wrapped sampler chose. Outside a request the wrapped sampler decides alone.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        return _record_in_request(result, attributes)

    def get_description(self) -> str:
        return f"RecordAll{{{self.inner.get_description()}}}"


_DROP = Decision.DROP


def _record_in_request(result: SamplingResult, attributes: Attributes) -> SamplingResult:
    if result.decision is Decision.DROP and _current.get() is not None:
        # A DROP result carries no attributes; the span keeps the ones it was started with.
        return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)
    return result


def build_resource(settings: Settings) -> Resource:
    attributes: dict[str, Any] = dict(settings.resource_attributes)
    if settings.service_name is not None:
        attributes["service.name"] = settings.service_name
    attributes.setdefault("host.name", socket.gethostname())
    # Resource.create() merges the SDK defaults (telemetry.sdk.*) under our attributes; the
    # settings already hold OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, and ours win.
    return Resource.create(attributes)


# Our own zero-code exporters (otel_bridge.zerocode): with the wrapper, the views come from
# OTEL_BRIDGE_EXPORTERS instead, so the same names in OTEL_*_EXPORTER add nothing twice.
_OWN_VIEWS = frozenset({"pinba", "wide_events", "expvar"})


def _skip_own(name: str, variable: str) -> None:
    logger.info(
        "otel_bridge: %s=%s is served by the wrapper itself (OTEL_BRIDGE_EXPORTERS)", variable, name
    )


def _otlp(name: str, signal: str) -> str:
    # As the SDK's configurator: "otlp" is gRPC unless OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL
    # says http/protobuf.
    if name != "otlp":
        return name
    variable = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    protocol = os.environ.get(variable) or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if not protocol:
        return "otlp_proto_grpc"
    by_protocol = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
    if protocol.strip() not in by_protocol:
        if not os.environ.get(variable):
            variable = "OTEL_EXPORTER_OTLP_PROTOCOL"
        raise ConfigError(variable, protocol, "grpc or http/protobuf")
    return by_protocol[protocol.strip()]


def _load(group: str, name: str, variable: str) -> Any:
    name = _otlp(name, group.split("_")[1])
    found = entry_points(group=group, name=name)
    for entry_point in found:
        return entry_point.load()
    installed = sorted({ep.name for ep in entry_points(group=group)})
    raise ConfigError(
        variable, name, f"an installed exporter name: {', '.join(installed) or 'none installed'}"
    )


def resolve_tracer_provider(
    settings: Settings, given: trace.TracerProvider | None, health: Health | None = None
) -> TracerProvider | None:
    """The SDK tracer provider otel_bridge adds its processor to, or None if there is none.

    Raises:
        ConfigError: OTEL_TRACES_EXPORTER names an exporter that is not installed.
    """
    provider = given if given is not None else trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        _wrap_sampler(provider)
        return provider
    if given is not None or not isinstance(provider, trace.ProxyTracerProvider):
        # A provider that is not the SDK's (or the no-op one): spans still go to it, but we
        # cannot see child spans, so records carry no timers from other instrumentations.
        logger.info(
            "otel_bridge: tracer provider %r is not the SDK's; no child-span timers",
            type(provider).__name__,
        )
        return None
    sampler = RecordAllSampler(_get_from_env_or_default())
    # Shut down by the bridge, within its bound, not by the SDK's unbounded atexit hook.
    created = TracerProvider(
        resource=build_resource(settings), sampler=sampler, shutdown_on_exit=False
    )
    CREATED.add(created)
    for name in settings.traces_exporters:
        if name in _OWN_VIEWS:
            _skip_own(name, "OTEL_TRACES_EXPORTER")
            continue
        exporter_class = _load("opentelemetry_traces_exporter", name, "OTEL_TRACES_EXPORTER")
        exporter = exporter_class()
        if health is not None:
            exporter = CountedSpanExporter(exporter, health, f"otel.traces.{name}")
        created.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(created)
    return created


def _wrap_sampler(provider: TracerProvider) -> None:
    # Tracers copy the provider's sampler when they are created, and instrumentations such
    # as httpx's get theirs before instrument() runs (opentelemetry-instrument does that). So
    # patch the sampler object itself, which every tracer shares; replace the provider's
    # sampler only if the object cannot take an attribute.
    inner = provider.sampler
    if isinstance(inner, RecordAllSampler) or getattr(inner, "_otel_bridge_record_all", False):
        return
    original = inner.should_sample

    def should_sample(
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        result = original(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is not _DROP:  # every span of a sampled trace: one comparison
            return result
        return _record_in_request(result, attributes)

    # What it wraps (otel_bridge._spans skips asking the SDK's default sampler, untouched).
    should_sample.otel_bridge_wraps = original  # type: ignore[attr-defined]
    try:
        inner.should_sample = should_sample  # type: ignore[method-assign]
        inner._otel_bridge_record_all = True  # type: ignore[attr-defined]
    except AttributeError:
        provider.sampler = RecordAllSampler(inner)


def resolve_meter_provider(
    settings: Settings,
    given: metrics.MeterProvider | None,
    readers: Sequence[MetricReader],
    health: Health | None = None,
) -> tuple[metrics.MeterProvider, bool]:
    """The meter provider the bridge records its metrics with, and whether `readers` are
    attached to it (only a provider otel_bridge creates can take them: the SDK has no way to
    add a reader to an existing provider).

    Raises:
        ConfigError: OTEL_METRICS_EXPORTER names an exporter that is not installed.
    """
    if given is not None:
        return given, False
    provider = metrics.get_meter_provider()
    if type(provider).__name__ != "_ProxyMeterProvider":
        # Already set by the app or by opentelemetry-instrument: record into it.
        return provider, False
    all_readers = list(readers)
    for name in settings.metrics_exporters:
        if name in _OWN_VIEWS:
            _skip_own(name, "OTEL_METRICS_EXPORTER")
            continue
        exporter_class = _load("opentelemetry_metrics_exporter", name, "OTEL_METRICS_EXPORTER")
        exporter = exporter_class()
        if isinstance(exporter, MetricReader):
            all_readers.append(exporter)
        else:
            if health is not None:
                exporter = CountedMetricExporter(exporter, health, f"otel.metrics.{name}")
            all_readers.append(PeriodicExportingMetricReader(exporter))
    created = MeterProvider(
        resource=build_resource(settings), metric_readers=all_readers, shutdown_on_exit=False
    )
    CREATED.add(created)
    metrics.set_meter_provider(created)
    return created, True


# The providers otel_bridge created (it shuts them down; it only flushes the others). Each is
# also the process's global, so there is one of each at most.
CREATED: set[Any] = set()
_COUNTED_LOGS: dict[int, CountedLogExporter] = {}


def no_providers_yet() -> bool:
    """Neither a tracer nor a meter provider is set globally yet."""
    return isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider) and (
        type(metrics.get_meter_provider()).__name__ == "_ProxyMeterProvider"
    )


def check_exporters(settings: Settings) -> None:
    """Load the exporters OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER name, creating none.

    Raises:
        ConfigError: one is not installed, or its protocol variable is invalid.
    """
    for group, names, variable in (
        ("opentelemetry_traces_exporter", settings.traces_exporters, "OTEL_TRACES_EXPORTER"),
        ("opentelemetry_metrics_exporter", settings.metrics_exporters, "OTEL_METRICS_EXPORTER"),
    ):
        for name in names:
            if name not in _OWN_VIEWS:
                _load(group, name, variable)


def _processors(provider: TracerProvider) -> tuple[Any, Any] | None:
    # The multi-processor the SDK keeps (no public way to reorder or list): None if it looks
    # different from what this code knows.
    active: Any = getattr(provider, "_active_span_processor", None)
    lock = getattr(active, "_lock", None)
    if lock is None or not isinstance(getattr(active, "_span_processors", None), tuple):
        return None
    return active, lock


def add_span_processor_first(provider: TracerProvider, processor: object) -> None:
    """Add `processor` ahead of the provider's others, so that its `shutdown()` (which ends
    the requests still queued) runs before theirs."""
    provider.add_span_processor(processor)  # type: ignore[arg-type]
    found = _processors(provider)
    if found is None:
        return
    active, lock = found
    with lock:
        others = tuple(item for item in active._span_processors if item is not processor)
        active._span_processors = (processor, *others)


def other_span_processors(provider: TracerProvider, processor: object) -> tuple[Any, ...]:
    """The provider's span processors but `processor` (none if they cannot be listed)."""
    found = _processors(provider)
    if found is None:
        return ()
    return tuple(item for item in found[0]._span_processors if item is not processor)


def logger_provider_for_events(settings: Settings) -> tuple[Any, CountedLogExporter | None]:
    """The LoggerProvider the wide events' `otlp` sink emits to: None for the process's own
    (the SDK's, set up by the app or `opentelemetry-instrument`), else one otel_bridge creates,
    exporting with OTLP as the `OTEL_EXPORTER_OTLP_[LOGS_]*` variables say.

    Raises:
        ConfigError: the protocol is invalid, or its exporter is not installed.
    """
    from opentelemetry import _logs
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    found = _logs.get_logger_provider()
    if found in CREATED:
        return found, _COUNTED_LOGS.get(id(found))  # ours, from a bridge this one replaces
    if isinstance(found, LoggerProvider):
        return None, None
    exporter = _load("opentelemetry_logs_exporter", "otlp", "OTEL_EXPORTER_WIDE_EVENTS_SINK")()
    counted = CountedLogExporter(exporter, "otel.logs.otlp")
    created = LoggerProvider(resource=build_resource(settings), shutdown_on_exit=False)
    created.add_log_record_processor(BatchLogRecordProcessor(counted))  # type: ignore[arg-type]
    CREATED.add(created)
    _COUNTED_LOGS[id(created)] = counted
    # As the tracer and meter providers otel_bridge creates: the process's own from now on
    # (the app's logging handler can use it; a rebuilt bridge finds it).
    _logs.set_logger_provider(created)
    return created, counted


def pending(provider: Any) -> int | None:
    """Spans or log records still queued in `provider`'s batch processors (None if that
    cannot be known): what a shutdown cut short did not send."""
    holder: Any = getattr(provider, "_active_span_processor", None) or getattr(
        provider, "_multi_log_record_processor", None
    )
    processors = getattr(holder, "_span_processors", None) or getattr(
        holder, "_log_record_processors", None
    )
    if not isinstance(processors, tuple):
        return None
    total = 0
    for processor in processors:
        queue = getattr(getattr(processor, "_batch_processor", None), "_queue", None)
        if queue is not None:
            total += len(queue)
    return total


def remove_span_processor(provider: TracerProvider, processor: object) -> None:
    """Take a bridge's processor off the provider when the bridge shuts down (Django rebuilds
    bridges under `override_settings`). The SDK has no public way to remove a processor, so
    this works on the multi-processor it keeps, and does nothing if that looks different."""
    found = _processors(provider)
    if found is None:
        return
    active, lock = found
    with lock:
        active._span_processors = tuple(
            item for item in active._span_processors if item is not processor
        )
