"""OpenTelemetry's current span, set the way the API sets it, in fewer calls: the API's
``attach(set_span_in_context(span))`` and ``detach()`` cost five Python calls a timer; with
the default runtime context (``contextvars``) the same Context goes onto the same ContextVar
directly."""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context

__all__ = ["CONTEXT", "SPAN_KEY", "attach_span", "detach_span"]


def _runtime_variable() -> Any:
    """The ContextVar that holds OpenTelemetry's current context, when the runtime context is
    the API's default one (``contextvars``); None for any other (OTEL_PYTHON_CONTEXT)."""
    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        if type(_RUNTIME_CONTEXT) is ContextVarsRuntimeContext and isinstance(_SPAN_KEY, str):
            return _RUNTIME_CONTEXT._current_context
    except (ImportError, AttributeError):
        pass
    return None


# The variable (None: go through the API), and the key the API keeps the current span under.
CONTEXT = _runtime_variable()
SPAN_KEY: str = getattr(trace.propagation, "_SPAN_KEY", "")
_dict_set = dict.__setitem__


def attach_span(span: Any) -> object:
    """Make `span` the current span; a token for `detach_span`."""
    variable = CONTEXT
    if variable is None:
        return otel_context.attach(trace.set_span_in_context(span))
    values = Context(variable.get())
    _dict_set(values, SPAN_KEY, span)
    return variable.set(values)


def detach_span(token: Any) -> None:
    """Undo `attach_span`; a token of another context is logged, as the API does."""
    variable = CONTEXT
    if variable is not None:
        try:
            variable.reset(token)
            return
        except (ValueError, RuntimeError):
            pass
    otel_context.detach(token)
