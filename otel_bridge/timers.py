"""`otel_bridge.timer(**tags)`: time a block of code as a tagged timer of the current request.

A timer is an ordinary OpenTelemetry span (scope ``otel_bridge.timer``) whose attributes are
the tags, so it shows up in traces too; the bridge folds it into the request's record like any
other child span. It works as a context manager (sync and async) and as a decorator (sync and
async functions).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_bridge import clock
from otel_bridge._compiled import compiled_core, set_up
from otel_bridge._context import current as _current
from otel_bridge._current_span import CONTEXT, SPAN_KEY, attach_span, detach_span
from otel_bridge._decorate import decorate
from otel_bridge._spans import _FLAGS, _RANDOM_TRACE_ID, ServerSpan
from otel_bridge._timer_spans import (
    TIMER_SPAN_SLOTS,
    TimerSpan,
    ended_early,
    finish_timer,
    join_record,
    start_timer,
)
from otel_bridge._version import __version__
from otel_bridge.builder import TIMER_SCOPE, RequestBuilder

__all__ = ["new_query_timer", "query_timer", "timer"]

F = TypeVar("F", bound=Callable[..., Any])
_INTERNAL = SpanKind.INTERNAL


def _flatten(tags: Mapping[str, object], prefix: str = "") -> dict[str, AttributeValue]:
    flat: dict[str, AttributeValue] = {}
    for key, value in tags.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            # pynba's rule: a mapping becomes dotted names, {"db": {"op": "select"}} → db.op.
            flat.update(_flatten(value, f"{name}."))
        elif value is None:
            flat[name] = ""
        elif isinstance(value, (str, bool, int, float)):
            flat[name] = value
        elif isinstance(value, (list, tuple, set, frozenset)):
            # Multi-valued tag. OTel sequences must be homogeneous: keep them as strings.
            flat[name] = tuple(_scalar_text(item) for item in value)
        else:
            flat[name] = str(value)
    return flat


def _scalar_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else ""
    return str(value)


def _tracer() -> trace.Tracer:
    builder = _current.get()
    if builder is not None:
        tracer: trace.Tracer = builder.bridge.timer_tracer
        return tracer
    return trace.get_tracer(TIMER_SCOPE, __version__)


class _PyTimerCore:
    """What a timer does when its block starts and ends, in Python: the one definition of it.
    `otel_bridge._speedups.TimerCore` does the same in C on the usual path (a timer of a
    request whose timers are built at the end) and calls these methods everywhere else."""

    __slots__ = ("_attributes", "_builder", "_kind", "_name", "_span", "_token")

    _attributes: Mapping[str, AttributeValue]
    _builder: RequestBuilder | None
    _kind: SpanKind | None  # None: INTERNAL
    _name: str
    _span: Any  # an SDK span, or a TimerSpan (a trace.Span by registration)
    _token: object

    def __init__(self, **tags: object) -> None:
        self._span = self._token = self._builder = self._kind = None
        for value in tags.values():
            if type(value) is not str:
                break
        else:
            # Every tag a string, the usual case: the keyword dict (new for each call) is the
            # attributes as they are, and the name their values.
            strings: dict[str, str] = tags  # type: ignore[assignment]  # (no cast(): a call)
            self._attributes = strings
            named = strings.get("name")
            self._name = named if named is not None else " ".join(strings.values()) or "timer"
            return
        self._attributes = _flatten(tags)
        name = tags.get("name")
        if name is None:
            name = " ".join(str(value) for value in self._attributes.values()) or "timer"
        self._name = str(name)

    def __enter__(self) -> Any:
        kind = self._kind or _INTERNAL
        builder = _current.get()
        if builder is not None:
            light: Any = start_timer(builder, self._name, self._attributes, kind)
            if light is not None:
                # Built at the end, or never (otel_bridge._timer_spans).
                self._span, self._builder = light, builder
                self._token = attach_span(light)
                return self
        span = _tracer().start_span(self._name, attributes=self._attributes, kind=kind)
        self._span = span
        self._token = attach_span(span)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span, token = self._span, self._token
        self._span = self._token = None
        if token is not None:
            detach_span(token)
        if type(span) is TimerSpan:
            builder, self._builder = self._builder, None
            if builder is not None:
                if span.closed:
                    ended_early(exc_type is not None)  # the app called end()
                else:
                    finish_timer(builder, span, exc)
            return
        if span is not None:
            if exc_type is not None:
                span.set_attribute("error.type", exc_type.__qualname__)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.end()


if TYPE_CHECKING:
    _TimerCore = _PyTimerCore
else:
    _TimerCore = compiled_core(
        _PyTimerCore,
        current=_current,
        context_var=CONTEXT,
        span_key=SPAN_KEY,
        context_type=Context,
        server_span=ServerSpan,
        timer_span=TimerSpan,
        span_context=SpanContext,
        flags=_FLAGS,
        random_trace_id=_RANDOM_TRACE_ID,
        getrandbits=random.getrandbits,
        wall_ns=clock.wall_ns,
        internal=_INTERNAL,
        slots=tuple(vars(TimerSpan)[name] for name in TIMER_SPAN_SLOTS),
        enter_slow=_PyTimerCore.__enter__,
        exit_slow=_PyTimerCore.__exit__,
        init_slow=_PyTimerCore.__init__,
        join_record=join_record,
        finish_timer=finish_timer,
        ended_early=ended_early,
        otel_detach=otel_context.detach,
    )


class timer(_TimerCore):
    """Time a block as a timer of the current request, tagged with `tags`.

    Args:
        **tags: tag names and values (str, int, float, bool, None, sequences for multi-valued
            tags, mappings for dotted names). A tag named ``name`` also names the span.

    Use one instance per block: ``with otel_bridge.timer(group="db"):``. As a decorator a
    fresh timer runs for every call. Outside a request the span is still created (and exported
    by the process's OTel exporters) but belongs to no record. Never raises on its own account.
    """

    __slots__ = ()

    if TYPE_CHECKING:

        def __enter__(self) -> timer: ...

    async def __aenter__(self) -> timer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        attributes, name, kind = self._attributes, self._name, self._kind

        def fresh() -> timer:
            instance = type(self).__new__(type(self))
            instance._attributes = attributes
            instance._name = name
            instance._kind = kind
            instance._span = instance._token = instance._builder = None
            return instance

        return decorate(func, fresh)


class query_timer(timer):
    """A database query's timer, for integrations that run the query themselves (Django's
    execute wrapper): a CLIENT span named `name` with the database conventions' `attributes`,
    tagged as every instrumentation's query is (otel_bridge._database). Not public."""

    __slots__ = ()

    def __init__(self, name: str, attributes: Mapping[str, AttributeValue]) -> None:
        self._span = self._token = self._builder = None
        self._kind = SpanKind.CLIENT
        self._attributes = attributes
        self._name = name


def _query_timers() -> Callable[[str, Mapping[str, AttributeValue]], query_timer]:
    """`query_timer(name, attributes)`: made in C where the C core is (the instance its
    __init__ makes, without running it: Django's execute wrapper makes one a query)."""
    if _TimerCore is _PyTimerCore:
        return query_timer
    module = set_up("setup_queries", query_timer=query_timer, client=SpanKind.CLIENT)
    return module.new_query_timer if module is not None else query_timer


new_query_timer = _query_timers()
