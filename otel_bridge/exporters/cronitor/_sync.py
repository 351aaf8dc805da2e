"""Syncing an app's healthchecks: from the CLI once per deploy, or at startup (opt-in), where
exactly one process of the server does it, in the background, within its time budget."""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from otel_bridge._scoreboard import master
from otel_bridge.config import Settings
from otel_bridge.exporters.cronitor._client import SyncResult, put_monitors
from otel_bridge.exporters.cronitor._derive import monitors_from_app
from otel_bridge.exporters.cronitor._spec import Healthcheck
from otel_bridge.record import RecordExporter, RequestRecord

__all__ = ["CronitorSync", "claim_file"]

logger = logging.getLogger("otel_bridge")


def _server_pid() -> tuple[int, bool]:
    """The pid that stands for this server, and whether this process is the whole server.

    Under gunicorn with otel_bridge's hooks, the master's (a preloaded app runs in the master
    itself, whose parent is the shell). Workers of gunicorn without them, or of `uvicorn
    --workers`, share their parent; any other process (plain uvicorn, a development server) is
    a server of its own. Keying those by their parent made a restart under the same parent (a
    shell loop, supervisord, a test run) skip the sync, as the first run's claim was still
    there.
    """
    import multiprocessing
    import sys

    known = master()
    if known is not None:
        return known, False
    if multiprocessing.parent_process() is not None or "gunicorn" in sys.modules:
        return os.getppid(), False
    return os.getpid(), True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# Claims this process holds a shared lock on: path → descriptor. One lock per process
# (flock locks belong to an open file: two bridges of one process holding one each would
# keep each other from ever being the last).
_holds: dict[str, int] = {}


def _hold(path: str, descriptor: int) -> None:
    import fcntl

    if path in _holds:
        os.close(descriptor)
        return
    fcntl.flock(descriptor, fcntl.LOCK_SH)
    _holds[path] = descriptor


def _let_go(path: str) -> None:
    """This process's views stop (the first to shut down speaks for the process: uvicorn's
    workers run no atexit handler, so an app's unused second bridge never would): let the
    claim go, and remove it if no other process of the server holds it any more."""
    import fcntl

    descriptor = _holds.pop(path, None)
    if descriptor is None:
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _remove(path)  # the last one out
    except OSError:
        pass  # other processes of the server still run; the last of them removes it
    finally:
        os.close(descriptor)


def claim_file(server_pid: int) -> str:
    """The file whose creation claims this server's startup sync (removed by on_exit)."""
    return os.path.join(tempfile.gettempdir(), f"otel-bridge-cronitor-{server_pid}.claim")


NOTHING_DECLARED = "no route declares a healthcheck: nothing sent"


class CronitorSync(RecordExporter):
    """The `cronitor` view: knows the app's monitors and puts them to Cronitor.

    Per request it does nothing. With `OTEL_EXPORTER_CRONITOR_SYNC_ON_STARTUP=true` the first
    process of a server to start (claimed by creating a file keyed by the server's pid, mode
    0600) syncs in a daemon thread; the others skip. The CLI syncs explicitly.
    """

    name = "cronitor"

    def __init__(
        self,
        settings: Settings,
        app: Any = None,
        discover: Callable[[], list[tuple[str, str, Healthcheck]]] | None = None,
    ) -> None:
        """`discover`: more healthchecks, for apps whose routes this view cannot read itself
        (otel_bridge.django passes Django's URL patterns)."""
        self.settings = settings
        self.app = app
        self.discover = discover
        self.extra: list[tuple[str, str, Healthcheck]] = []
        self.result: SyncResult | None = None
        self.thread: threading.Thread | None = None
        # The startup-sync claim this process holds a shared lock on (`uvicorn --workers`).
        self._held: str | None = None

    def monitors(self) -> list[dict[str, Any]]:
        """The monitors to put. Raises HealthcheckError / ConfigError on a bad declaration."""
        settings = self.settings
        if settings.cronitor_public_url is None:
            from otel_bridge.errors import ConfigError

            raise ConfigError(
                "OTEL_EXPORTER_CRONITOR_PUBLIC_URL", None, "the public URL Cronitor probes"
            )
        extra = list(self.extra)
        if self.discover is not None:
            extra.extend(self.discover())
        return monitors_from_app(
            self.app,
            public_url=settings.cronitor_public_url,
            service=settings.service_name or "app",
            environment=settings.cronitor_environment,
            extra=extra,
        )

    def put(
        self, extra_monitors: list[dict[str, Any]] | None = None, rollback: bool = False
    ) -> SyncResult:
        """Sync now (blocking, within the budget); `extra_monitors` are sent as given."""
        if not self.settings.cronitor_api_key:
            return SyncResult(False, None, 0, "CRONITOR_API_KEY is not set: nothing sent")
        monitors = [*self.monitors(), *(extra_monitors or [])]
        if not monitors:
            # Cronitor upserts by key and deletes nothing: an empty list would change nothing.
            return SyncResult(True, None, 0, NOTHING_DECLARED)
        return put_monitors(
            monitors,
            api_key=self.settings.cronitor_api_key,
            endpoint=self.settings.cronitor_endpoint,
            api_version=self.settings.cronitor_api_version,
            rollback=rollback,
            budget=self.settings.cronitor_timeout,
        )

    def start(self) -> None:
        """Startup sync, if configured and this process claims it; never blocks or raises."""
        if not self.settings.cronitor_sync_on_startup or self.thread is not None:
            return
        server, alone = _server_pid()
        claim = claim_file(server)
        # Without a master running our hooks (`uvicorn --workers`), the workers remove the
        # claim among themselves: each holds a shared lock on it while it runs, and the one
        # that leaves last (its exclusive lock granted) removes it.
        shared = not alone and master() is None
        try:
            descriptor = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            won = True
        except FileExistsError:
            won = False  # another process of this server synced already
            if not shared:
                return
            try:
                descriptor = os.open(claim, os.O_RDONLY)
            except OSError:
                return
        except OSError as exc:
            logger.warning("otel_bridge: no Cronitor startup sync (%s)", exc)
            return
        if won:
            os.write(descriptor, str(os.getpid()).encode())
        if shared:
            _hold(claim, descriptor)
            self._held = claim
        else:
            os.close(descriptor)
        if alone:
            # No master removes it (gunicorn's on_exit hook does there): this process does, at
            # shutdown (lifespan) or, failing that, at exit.
            self._claim = claim
            atexit.register(_remove, claim)
        if not won:
            return

        def run() -> None:
            try:
                self.result = self.put()
            except Exception as exc:  # noqa: BLE001 - never into the app
                self.result = SyncResult(False, None, 0, f"{type(exc).__name__}: {exc}")
            # Seen in /debug/vars (otel_bridge.counts / errors), logged once.
            health = getattr(self, "health", None)
            if self.result.ok:
                logger.info("otel_bridge: Cronitor sync: %s", self.result.message)
                if health is not None and self.result.attempts:
                    health.count("cronitor.synced")
            elif health is not None:
                health.error("exporter.cronitor.sync", RuntimeError(self.result.message))
            else:
                logger.warning("otel_bridge: Cronitor sync: %s", self.result.message)

        self.thread = threading.Thread(target=run, name="otel-bridge-cronitor", daemon=True)
        self.thread.start()

    # Monitors come from the routes, not from requests.
    reads_records = False

    def export(self, records: list[RequestRecord]) -> None:  # type: ignore[override]
        pass

    def shutdown(self) -> None:
        claim = getattr(self, "_claim", None)
        if claim is not None:
            _remove(claim)
        held = getattr(self, "_held", None)
        if held is not None:
            self._held = None
            _let_go(held)
