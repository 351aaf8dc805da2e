"""Bridges built from Django's settings, and how they follow `override_settings`.

Two kinds: the bridge of a wrapped handler (`instrument(get_asgi_application())` without an
explicit `settings=`), and the one `OtelBridgeMiddleware` records with when no wrapper did (the
test client, a handler something else wrapped first). Both are rebuilt from the settings when
Django says `OTEL_BRIDGE` changed (`setting_changed`, sent by `override_settings` on entry and
exit): the new bridge takes the next request, the old one exports what it holds and shuts
down. An invalid value raises `ConfigError` out of `override_settings`, naming the variable.

The process-wide OTel providers stay as they are: a rebuilt bridge adds its span processor
to the same tracer provider (the old one's is taken off) and keeps the old bridge's expvar
metric reader, since the SDK cannot add a reader to a provider that exists.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

from otel_bridge._context import current
from otel_bridge.bridge import Bridge
from otel_bridge.config import Settings
from otel_bridge.record import RecordExporter

__all__ = ["connect", "force_flush", "register", "standalone", "uses_middleware"]

# wrapper (OtelBridgeASGIMiddleware / OtelBridgeWSGIMiddleware) → how to build its bridge again,
# and the exporters the caller passed in (flushed, never shut down, by a replaced bridge).
_wrappers: weakref.WeakKeyDictionary[Any, tuple[Callable[[], Bridge], tuple[RecordExporter, ...]]]
_wrappers = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_standalone: tuple[Bridge, tuple[tuple[str, str], ...]] | None = None
_middleware = False
# Called when OTEL_BRIDGE changes, after the bridges are rebuilt (otel_bridge.django.views
# forgets its standalone view).
on_change: list[Callable[[], None]] = []


def register(
    wrapper: Any, rebuild: Callable[[], Bridge], record_exporters: tuple[RecordExporter, ...]
) -> None:
    """Rebuild `wrapper`'s bridge with `rebuild()` whenever `OTEL_BRIDGE` changes."""
    _wrappers[wrapper] = (rebuild, record_exporters)
    connect()


def settings() -> Settings:
    """The settings as Django's configuration and the environment give them now.

    Raises:
        ConfigError: a value in `OTEL_BRIDGE` or the environment is invalid.
    """
    from otel_bridge.django._settings import django_environ

    return Settings.from_env(django_environ())


def uses_middleware() -> None:
    """Called by OtelBridgeMiddleware at startup: fail now on bad settings, not per request.

    Raises:
        ConfigError: a value in `OTEL_BRIDGE` or the environment is invalid.
    """
    global _middleware
    settings()
    _middleware = True
    connect()


def standalone() -> tuple[Bridge, tuple[tuple[str, str], ...]] | None:
    """The middleware's own bridge and its propagation keys, built at first use; None when
    `OTEL_SDK_DISABLED` is set or it cannot be built (counted, logged once)."""
    built = _standalone
    if built is not None or not _middleware:
        return built
    return _build_standalone()


def _build_standalone() -> tuple[Bridge, tuple[tuple[str, str], ...]] | None:
    global _standalone, _middleware
    with _lock:
        if _standalone is not None:
            return _standalone
        from otel_bridge.registry import ViewContext, build_bridge
        from otel_bridge.wsgi import propagation_keys

        resolved = settings()
        if resolved.sdk_disabled:
            _middleware = False
            return None
        # No handler to read monitors from here: `manage.py healthchecks --sync` does that.
        resolved = resolved.replace(
            exporters=[name for name in resolved.exporters if name != "cronitor"]
        )
        bridge = build_bridge(ViewContext(resolved))
        _standalone = (bridge, propagation_keys(bridge))
        return _standalone


def expvar_view() -> Any:
    """The expvar view of the bridge recording this request, else the middleware's."""
    builder = current.get()
    if builder is not None:
        return builder.bridge.expvar
    built = standalone()
    return built[0].expvar if built is not None else None


def force_flush(timeout_millis: int = 10_000) -> bool:
    """Hand every request recorded so far to the views (for tests); False on timeout."""
    bridges = [wrapper.bridge for wrapper in list(_wrappers.keys())]
    if _standalone is not None:
        bridges.append(_standalone[0])
    results = [bridge.force_flush(timeout_millis) for bridge in bridges]  # flush them all
    return all(results)


def _setting_changed(*, setting: str, **_: Any) -> None:
    global _standalone
    if setting != "OTEL_BRIDGE":
        return
    settings()  # a bad value: ConfigError out of override_settings, nothing replaced
    with _lock:
        for wrapper, (rebuild, shared) in list(_wrappers.items()):
            old = wrapper.bridge
            new = rebuild()
            _hand_over(old, new)
            wrapper.bind(new)
            old.shutdown(5_000, keep=shared, final=False)
        old_standalone, _standalone = _standalone, None
    if old_standalone is not None:
        # The next request builds the new one; what the old one holds is exported now.
        old_standalone[0].shutdown(5_000, final=False)
    for forget in on_change:
        forget()


def _hand_over(old: Bridge, new: Bridge) -> None:
    # What the old bridge would undo at shutdown (leaving a shared scoreboard…) is the new
    # one's to undo now; the expvar reader is the one the meter provider knows.
    new.on_shutdown.extend(old.on_shutdown)
    old.on_shutdown.clear()
    if old.expvar is not None and new.expvar is not None:
        new.expvar.reader = old.expvar.reader
        new.expvar.reader_attached = old.expvar.reader_attached


def _request_exception(**_: Any) -> None:
    # Django turns a view's exception into a 500 response before any wrapper sees it: keep
    # the exception itself for `error.type` and the wide event.
    # (Under ASGI Django handles it in another thread, where sys.exc_info() is empty.)
    builder = current.get()
    if builder is not None and builder.exception is None:
        builder.exception = sys.exc_info()[1]


def connect() -> None:
    """Listen to Django's signals (idempotent)."""
    from django.core.signals import got_request_exception, setting_changed

    setting_changed.connect(_setting_changed, dispatch_uid="otel_bridge.setting_changed")
    got_request_exception.connect(_request_exception, dispatch_uid="otel_bridge.exception")
