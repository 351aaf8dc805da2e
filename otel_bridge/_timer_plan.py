"""What a timer's span needs from the SDK provider (`TimerPlan`), read once when the bridge
binds to it: whether timers and other instrumentations' spans may skip the SDK's per-span
machinery (`otel_bridge._timer_spans`, `otel_bridge._foreign_spans`), and how their ids and
sampling are then decided."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

__all__ = ["TimerPlan", "sdk_metrics_off"]


class TimerPlan:
    """What a timer's span needs from the provider, read once when the bridge binds to it;
    `of()` is None where timers must be the SDK's spans."""

    def __init__(
        self, provider: Any, tracer: Any, measure_cpu: bool, compiled: bool = True
    ) -> None:
        self.sampler = provider.sampler
        self.default_sampler = _follows_local_parent(self.sampler)
        self.generate_span_id = provider.id_generator.generate_span_id
        self.random_ids = type(provider.id_generator) is RandomIdGenerator
        # The processors every tracer of the provider hands its spans to (otel_bridge.
        # _foreign_spans: another instrumentation's tracer of this provider).
        self.active = getattr(provider, "_active_span_processor", None)
        self.tracer = tracer
        self.limits = tracer._span_limits
        # Fewer tags than this: the SDK keeps them all (the timer may add error.type).
        self.max_attributes = (self.limits.max_span_attributes or 0) - 1
        self.measure_cpu = measure_cpu
        # Whether the C core (otel_bridge._speedups) may time these timers on its own: on the
        # usual path, the one it implements (the default sampler and ids, no CPU measured).
        self.fast = bool(compiled and self.default_sampler and self.random_ids and not measure_cpu)

    @classmethod
    def of(
        cls, provider: Any, tracer: Any, measure_cpu: bool, compiled: bool = True
    ) -> TimerPlan | None:
        try:
            limits = tracer._span_limits
            if limits.max_attribute_length is not None:
                return None  # the SDK would truncate values: let it
            enabled = getattr(tracer, "_is_enabled", None)
            if enabled is not None and not enabled():
                return None
            if tracer._instrumentation_scope is None:
                return None
            if not sdk_metrics_off(tracer):
                return None  # the SDK's own span metrics are on: its spans count them
            return cls(provider, tracer, measure_cpu, compiled)
        except AttributeError:
            return None  # an SDK whose internals differ: its own spans


def sdk_metrics_off(tracer: Any) -> bool:
    """Whether `tracer` records none of the SDK's own span metrics
    (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED; SDKs before them have none)."""
    metrics = getattr(tracer, "_tracer_metrics", None)
    return metrics is None or type(metrics).__name__ == "NoOpTracerMetrics"


def _follows_local_parent(sampler: Any) -> bool:
    """Whether `sampler` is the SDK's ParentBased(ALWAYS_ON) with its default delegates
    (possibly wrapped by otel_bridge, which only turns a DROP in a request into RECORD_ONLY):
    a child of a local parent then takes the parent's decision and trace state."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    from otel_bridge._spans import _samples_every_root

    inner = getattr(sampler, "inner", sampler)  # otel_bridge's RecordAllSampler
    return (
        _samples_every_root(inner)
        and getattr(inner, "_local_parent_sampled", None) is ALWAYS_ON
        and getattr(inner, "_local_parent_not_sampled", None) is ALWAYS_OFF
        and type(inner) is ParentBased
    )
