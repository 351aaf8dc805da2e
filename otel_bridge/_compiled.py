"""The optional C core (`otel_bridge._speedups`, built from ``_speedups.c`` with the package
when a C compiler is at hand; ``hatch_build.py``): the base a timer gets, and the views'
compiled functions.

What is compiled does what the Python code does (`otel_bridge.timers._PyTimerCore`, the
views' functions), on the usual path only, and calls the Python code everywhere else; a
bridge whose settings say ``OTEL_BRIDGE_PURE_PYTHON`` uses none of it (`TimerPlan.fast`, the
views' `compiled=` arguments). Importing reads no setting: a module that is missing, or built
from another version of the source, is left unused, and `state` says why.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "EXPECTED_VERSION",
    "compiled_core",
    "describe",
    "load",
    "set_up",
    "speedups",
    "state",
]

# The C source's SPEEDUPS_VERSION this Python code works with.
EXPECTED_VERSION = 11


class _State:
    loaded = False  # whether the module was looked for
    compiled = False  # whether it is used
    reason = "not loaded"  # why not
    module: Any = None


state = _State()


def load() -> Any:
    """Look for the module (again); it, or None with `state.reason` saying why."""
    state.loaded, state.compiled, state.module = True, False, None
    try:
        # (by name: it is an extension module, or missing)
        module = importlib.import_module("otel_bridge._speedups")
    except ImportError as exc:
        state.reason = f"not built ({exc})"
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to load it: the Python code
        state.reason = f"not loaded ({type(exc).__name__}: {exc})"
        return None
    version = getattr(module, "VERSION", None)
    if version != EXPECTED_VERSION:
        state.reason = (
            f"built from another source (version {version}, expected {EXPECTED_VERSION}): "
            "rebuild it with `python hatch_build.py`"
        )
        return None
    state.compiled, state.reason, state.module = True, "", module
    return module


def speedups() -> Any:
    """The module, looked for once; None where it is not used."""
    return state.module if state.loaded else load()


def compiled_core(fallback: type, **refs: Any) -> type:
    """`_speedups.TimerCore`, handed `refs` (its `setup()`), or `fallback`."""
    module = speedups()
    if module is None:
        return fallback
    try:
        module.setup(**refs)
    except Exception as exc:  # noqa: BLE001 - a module that does not fit: the Python code
        state.compiled, state.module = False, None
        state.reason = f"not set up ({type(exc).__name__}: {exc})"
        return fallback
    core: type = module.TimerCore
    return core


def set_up(name: str, **refs: Any) -> Any:
    """The module, its `name` function handed `refs` (a view's compiled functions); None where
    it is unavailable or does not fit (the Python code then runs)."""
    module = speedups()
    if module is None:
        return None
    try:
        getattr(module, name)(**refs)
    except Exception:  # noqa: BLE001 - a module that does not fit: the Python code
        return None
    return module


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
