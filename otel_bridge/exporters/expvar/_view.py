"""`/debug/vars`: the body Go's expvar handler serves, plus the bridge's own sections.

Top-level keys, sorted as Go sorts them: `cmdline` (redacted), `memstats` (Go's 32 fields),
`gc`, `otel` (the OTel SDK's metrics, collected on read), `otel_bridge` (the bridge's health:
errors, drops, queue depth), `process`, `requests` (per route and status class), `resource`,
and every user variable. A variable whose value raises renders as an error marker; the
endpoint itself never fails.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import heapq
import ipaddress
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol

from otel_bridge._health import Health
from otel_bridge._scoreboard import current
from otel_bridge._secrets import redact_argv
from otel_bridge._version import __version__
from otel_bridge.exporters.expvar._access import Access
from otel_bridge.exporters.expvar._format import go_quote, json_value
from otel_bridge.exporters.expvar._memstats import GCMonitor, memstats
from otel_bridge.exporters.expvar._stats import ExpvarMetricReader, RequestStats
from otel_bridge.exporters.expvar._vars import Registry, default_registry

if TYPE_CHECKING:
    from otel_bridge.config import Settings


class Engine(Protocol):
    """What the view shows of the engine recording requests (otel_bridge.bridge.Bridge)."""

    health: Health
    readers_attached: bool
    exporters: tuple[Any, ...]

    @property
    def queue_depth(self) -> int: ...

    def lanes(self) -> dict[str, Any]: ...

    def timer_core(self) -> str: ...


__all__ = ["ExpvarEndpoint", "program_argv"]


def program_argv() -> list[str]:
    """Go's `os.Args` for this process: the program that was started, then its arguments.

    The program is what the user ran, not the interpreter: a console script or a script as
    invoked (`/srv/venv/bin/gunicorn`, `manage.py`), or the module of `python -m` (`uvicorn`),
    so that tools naming a service after `cmdline[0]` (expvarmon) name it after the program.
    With `python -c` there is no program but the interpreter, which is then shown as started.
    """
    original = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    argv = list(sys.argv)
    # The interpreter's own options come first; the program (a script, -m, -c) ends them.
    index = 1
    while index < len(original):
        item = original[index]
        if item == "-m" and index + 1 < len(original):
            return [original[index + 1], *argv[1:]]
        if item == "-c" or item.startswith("-c"):
            return original
        if item in ("-X", "-W"):
            index += 2  # an option with its value in the next argument
            continue
        if not item.startswith("-") or item == "-":
            break
        index += 1
    return argv if argv and argv[0] else original


CONTENT_TYPE = "application/json; charset=utf-8"


def _first(entry: tuple[str, str, object]) -> str:
    return entry[0]


Response = tuple[int, list[tuple[str, str]], bytes]


class ExpvarEndpoint:
    """Renders `/debug/vars` and decides who may read it.

    Args:
        path: where it is served.
        access: the access rule.
        registry: user variables (default: the process's registry).
        redact: extra patterns removed from `cmdline`.
        full_process: add psutil's costlier figures (memory_full_info, network I/O).
        unrouted_by_path: name requests no route matched by their path (`route_label`).
    """

    def __init__(
        self,
        *,
        path: str = "/debug/vars",
        access: Access | None = None,
        registry: Registry | None = None,
        redact: tuple[re.Pattern[str], ...] = (),
        full_process: bool = False,
        unrouted_by_path: bool = False,
    ) -> None:
        self.path = path
        self.ui_path = path.rstrip("/") + "/ui"
        self.access = access or Access()
        self.registry = registry if registry is not None else default_registry()
        self.monitor = GCMonitor()
        self.stats = RequestStats(unrouted_by_path)
        self.reader = ExpvarMetricReader()
        self.reader_attached = False
        self.full_process = full_process
        self.health = Health()
        self.queue_depth: Callable[[], int] = lambda: 0
        self.lanes: Callable[[], dict[str, Any]] = dict
        self.exporter_names: tuple[str, ...] = ()
        self.timer_core: Callable[[], str] = str
        self._argv = redact_argv(program_argv(), redact)
        self._cmdline = json_value(self._argv)
        self._started = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ExpvarEndpoint:
        """Build from `OTEL_EXPORTER_EXPVAR_*` (already validated by `Settings`)."""
        access = Access(
            allow=[ipaddress.ip_network(n, strict=False) for n in settings.expvar_allow],
            token=settings.expvar_token,
            trusted_proxies=[
                ipaddress.ip_network(n, strict=False)
                for n in settings.expvar_trusted_proxies
                if n != "unix"
            ],
            trust_unix="unix" in settings.expvar_trusted_proxies,
        )
        return cls(
            path=settings.expvar_path,
            access=access,
            redact=tuple(re.compile(pattern) for pattern in settings.expvar_redact),
            full_process=settings.expvar_process == "full",
            unrouted_by_path=settings.unrouted == "path",
        )

    def attach(self, bridge: Engine) -> None:
        """Show `bridge`'s health and metrics; start measuring GC pauses (not at import)."""
        self.health = bridge.health
        self.queue_depth = lambda: bridge.queue_depth
        self.lanes = bridge.lanes
        self.exporter_names = tuple(exporter.name for exporter in bridge.exporters)
        self.timer_core = bridge.timer_core
        self.reader_attached = bridge.readers_attached
        self.monitor.install()

    def render(self) -> bytes:
        """The whole body; never raises."""
        sections: dict[str, Callable[[], str]] = {
            "cmdline": lambda: self._cmdline,
            "memstats": lambda: memstats(self.monitor),
            "gc": self._gc,
            "otel": self._otel,
            "otel_bridge": self._bridge_health,
            "process": self._process,
            # The server's figures under a multi-process server (the same whichever worker
            # answers), with this worker's own beside them; this process's otherwise.
            "requests": self.stats.render_server,
            "resource": self._resource,
            "server": self._server,
        }
        if current() is not None:
            sections["requests_this_worker"] = self.stats.render
        # Go sorts with sort.Strings: byte order, which for UTF-8 is code point order. The
        # built-in names are reserved, so the two sorted lists merge without duplicates.
        builtin = sorted((name, go_quote(name) + ": ", render) for name, render in sections.items())
        user = self.registry.sorted_entries()
        parts: list[str] = []
        append = parts.append
        for name, prefix, var in heapq.merge(
            builtin, ((n, p, v.render) for n, p, v in user), key=_first
        ):
            try:
                append(prefix + var())
            except Exception as exc:  # noqa: BLE001 - one bad variable must not fail it all
                self.health.error(f"expvar.var.{name}", exc)
                append(prefix + json_value({"error": f"{type(exc).__name__}: {exc}"}))
        return ("{\n" + ",\n".join(parts) + "\n}\n").encode("utf-8", "replace")

    def _otel(self) -> str:
        if not self.reader_attached:
            return "{}"
        text = self.reader.render()
        claim = current()
        if claim is None or text == "{}":
            return text
        # OpenTelemetry's metrics are per process (each exports its own, with its own
        # service.instance.id): said plainly where a reader would take them for the server's.
        scope = go_quote(f"this worker (pid {os.getpid()}, slot {claim[1]}) only")
        return '{"_scope": ' + scope + ", " + text[1:]

    def _gc(self) -> str:
        return json_value(
            {
                "counts": list(gc.get_count()),
                "thresholds": list(gc.get_threshold()),
                "generations": gc.get_stats(),
                "enabled": gc.isenabled(),
            }
        )

    def _bridge_health(self) -> str:
        health = self.health.snapshot()
        return json_value(
            {
                **health,
                "queue_depth": self.queue_depth(),
                "views": self.lanes(),
                "exporters": list(self.exporter_names),
                "timers": self.timer_core(),
                "version": __version__,
            }
        )

    def _server(self) -> str:
        # All workers of a multi-process server, from the shared scoreboard (gunicorn with
        # otel_bridge.gunicorn's hooks); this process alone otherwise.
        claim = current()
        if claim is None:
            return json_value({"workers": None, "note": "single process (no scoreboard)"})
        board, slot = claim
        return json_value({**board.read(), "this_worker_slot": slot, "segment": board.name})

    def _process(self) -> str:
        try:
            fds: int | None = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = None
        values: dict[str, Any] = {
            "pid": os.getpid(),
            "threads": threading.active_count(),
            "fds": fds,
            "uptime_seconds": round(time.monotonic() - self._started, 3),
            "python": sys.version.split()[0],
        }
        if self.full_process:
            values["psutil"] = _psutil_figures()
        return json_value(values)

    def _resource(self) -> str:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        fields = (
            "ru_utime",
            "ru_stime",
            "ru_maxrss",
            "ru_minflt",
            "ru_majflt",
            "ru_inblock",
            "ru_oublock",
            "ru_nvcsw",
            "ru_nivcsw",
            "ru_nsignals",
        )
        return json_value({name[3:]: getattr(usage, name) for name in fields})

    def respond(
        self, method: str, peer: str | None, headers: Mapping[str, str], path: str | None = None
    ) -> Response:
        """Status, headers and body for one request to the endpoint; never raises."""
        accept = headers.get("accept") or ""
        if path == self.ui_path or (path in (None, self.path) and "text/html" in accept):
            return self._dashboard(peer, headers)
        if not self.access.allowed(peer, headers):
            self.health.count("expvar.refused")
            body = b"403 Forbidden: /debug/vars answers configured clients only\n"
            return 403, [("content-type", "text/plain; charset=utf-8")], body
        self.health.count("expvar.served")
        body = self.render()
        return 200, [("content-type", CONTENT_TYPE), ("cache-control", "no-store")], body

    def _dashboard(self, peer: str | None, headers: Mapping[str, str]) -> Response:
        # The page holds no data (it fetches the JSON, sending a token from the URL's
        # #token=… fragment), so the network rule alone decides who gets it.
        if not self.access.network_allowed(peer, headers):
            self.health.count("expvar.refused")
            return 403, [("content-type", "text/plain; charset=utf-8")], b"403 Forbidden\n"
        page, policy = _dashboard_page()
        return (
            200,
            [
                ("content-type", "text/html; charset=utf-8"),
                ("content-security-policy", policy),
                ("x-content-type-options", "nosniff"),
                ("referrer-policy", "no-referrer"),
                ("cache-control", "no-store"),
            ],
            page,
        )


_PAGE: tuple[bytes, str] | None = None


def _dashboard_page() -> tuple[bytes, str]:
    """The dashboard and its Content-Security-Policy: nothing but its own inline script and
    style (by hash) and fetches to this origin; no CDN, so it works offline."""
    global _PAGE
    if _PAGE is None:
        page = resources.files(__package__).joinpath("dashboard.html").read_bytes()
        hashes = {}
        for tag in ("script", "style"):
            match = re.search(rb"<%s>(.*?)</%s>" % (tag.encode(), tag.encode()), page, re.S)
            assert match is not None
            digest = base64.b64encode(hashlib.sha256(match.group(1)).digest()).decode()
            hashes[tag] = f"'sha256-{digest}'"
        policy = (
            f"default-src 'none'; script-src {hashes['script']}; style-src {hashes['style']}; "
            "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        _PAGE = (page, policy)
    return _PAGE


def _psutil_figures() -> dict[str, Any]:
    """`OTEL_EXPORTER_EXPVAR_PROCESS=full`: what django-expvar-psutil gave (system-wide CPU
    times, virtual memory, swap, network I/O) and this process's memory_full_info (it parses
    smaps: ~250 µs). The cheap figures — CPU times, RSS, threads, fds — are always in
    `resource`, `memstats` and `process`, without psutil."""
    try:
        import psutil
    except ImportError:
        return {"error": "psutil is not installed: pip install 'otel-bridge[psutil]'"}
    return {
        "cpu": psutil.cpu_times()._asdict(),
        "vmem": psutil.virtual_memory()._asdict(),
        "swap": psutil.swap_memory()._asdict(),
        "netio": psutil.net_io_counters()._asdict(),
        "memory_full_info": psutil.Process().memory_full_info()._asdict(),
    }
