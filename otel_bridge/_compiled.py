"""The optional C core (`otel_bridge._speedups`, built from ``_speedups.c`` with the package
when a C compiler is at hand; ``hatch_build.py``): the base a timer gets.

The compiled base does what the Python one does (`otel_bridge.timers._PyTimerCore`), on the
usual path only, and calls the Python one everywhere else; a bridge whose settings say
``OTEL_BRIDGE_PURE_PYTHON`` keeps the C core off its timers (`TimerPlan.fast`). Importing
reads no setting: a module that is missing, or built from another version of the source, leaves
the Python base, and `state` says why.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EXPECTED_VERSION", "compiled_core", "describe", "state"]

# The C source's SPEEDUPS_VERSION this Python code works with.
EXPECTED_VERSION = 1


class _State:
    compiled = False  # whether timers have the C base
    reason = "not loaded"  # why not


state = _State()


def compiled_core(fallback: type, **refs: Any) -> type:
    """`_speedups.TimerCore`, handed `refs` (its `setup()`), or `fallback`."""
    try:
        # (by name: it is an extension module, or missing)
        _speedups = importlib.import_module("otel_bridge._speedups")
    except ImportError as exc:
        state.reason = f"not built ({exc})"
        return fallback
    version = getattr(_speedups, "VERSION", None)
    if version != EXPECTED_VERSION:
        state.reason = (
            f"built from another source (version {version}, expected {EXPECTED_VERSION}): "
            "rebuild it with `python hatch_build.py`"
        )
        return fallback
    _speedups.setup(**refs)
    state.compiled, state.reason = True, ""
    core: type = _speedups.TimerCore
    return core


def describe(plan: Any, pure_python: bool) -> str:
    """What `/debug/vars` says times a bridge's timers, given its `TimerPlan` (None: SDK spans)."""
    if plan is None:
        return "sdk spans"
    if plan.fast:
        return "c"
    if not state.compiled:
        return f"python (the C core is {state.reason})"
    if pure_python:
        return "python (OTEL_BRIDGE_PURE_PYTHON)"
    if plan.measure_cpu:
        return "python (OTEL_BRIDGE_TIMER_CPU)"
    return "python (the provider's sampler or id generator)"
