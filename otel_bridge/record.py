"""The immutable per-request record every view is built from, and the exporter interface.

A `RequestRecord` is the only thing exporters see of the request path: the bridge folds the
request's server span and every child span that ended inside the request into one record when
the request is over, and hands it to each `RecordExporter` on a background thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, runtime_checkable

from opentelemetry.util.types import AttributeValue

from otel_bridge._health import Health

__all__ = [
    "CUSTOM",
    "EMPTY",
    "UNMATCHED",
    "RecordExporter",
    "RequestRecord",
    "Timer",
    "route_label",
    "timer_kind",
]

EMPTY: Mapping[str, str] = MappingProxyType({})

TagValue = str | int | float | bool | tuple[str | int | float | bool, ...]


class Timer(NamedTuple):
    """One child span (or `otel_bridge.timer()` block) that ran inside a request.

    Times are nanoseconds. `start_ns` is the offset from the request's start. CPU times are
    those of the thread that ran the span, and 0 when it started and ended on different
    threads.
    """

    name: str
    # For otel_bridge.timer(), its `group` tag (`timer_kind`), "custom" without one;
    # otherwise derived from the span's semantic conventions: "db", "http", "rpc",
    # "messaging" or "internal" (which is its `group` tag too).
    kind: str
    tags: tuple[tuple[str, TagValue], ...]
    start_ns: int
    duration_ns: int
    ru_utime_ns: int
    ru_stime_ns: int
    error_type: str | None
    hit_count: int = 1


class RequestRecord(NamedTuple):
    """Everything otel_bridge knows about one finished HTTP request.

    Durations are nanoseconds from monotonic clocks; `start_time_ns` is wall-clock time (Unix
    epoch) for display. `duration_ns` runs to the end of the response (the last body byte
    handed to the server), `app_duration_ns` to the return of the application callable (which
    includes background tasks in ASGI and closing the iterable in WSGI).
    """

    interface: str  # "asgi" or "wsgi"
    method: str  # normalised: one of the known methods, or "_OTHER"
    method_original: str
    route: str | None  # route template ("/users/{uid}") when the framework knows it
    path: str
    query: str
    scheme: str
    protocol_version: str
    server_address: str | None
    server_port: int | None
    client_address: str | None
    client_port: int | None
    user_agent: str | None
    headers: Mapping[str, str]  # request headers, lower-case names; repeated ones joined by ","
    status: int  # HTTP status sent, 500 if the app raised before responding, 0 if nothing
    response_bytes: int
    completed: bool  # the whole response was handed to the server
    start_time_ns: int
    duration_ns: int
    app_duration_ns: int
    ru_utime_ns: int
    ru_stime_ns: int
    max_rss_bytes: int
    timers: tuple[Timer, ...]
    timers_dropped: int
    tags: Mapping[str, str]  # request tags set with otel_bridge.tag() (Pinba request tags)
    fields: Mapping[str, object]  # wide-event fields set with otel_bridge.wide_event.set()
    timed_out: bool  # a `timeout` event was already written for this request
    exception: BaseException | None
    error_type: str | None
    trace_id: int
    span_id: int
    sampled: bool
    attributes: Mapping[str, AttributeValue]  # the server span's attributes
    resource: Mapping[str, AttributeValue]
    pid: int
    thread_id: int


@runtime_checkable
class TimeoutAware(Protocol):
    """An exporter that writes events for requests still running (wide events)."""

    name: str

    def timeout_event(
        self, record: RequestRecord, open_spans: list[dict[str, Any]], stack: str
    ) -> None: ...

    def loop_blocked_event(self, info: dict[str, Any]) -> None: ...


CUSTOM = "custom"
# Groups that are kinds of their own, first come; later ones are custom.
MAX_KINDS = 64
_KINDS: dict[str, str] = {}


def timer_kind(group: object) -> str:
    """The kind of a timer of `otel_bridge.timer()` whose ``group`` tag is `group`: the group
    itself, so ``group="db"`` is a db timer in every view (Pinba's tag, the wide event's
    ``timers.db.*``); `CUSTOM` without one, for a group that is no short name, and past
    `MAX_KINDS` groups."""
    if type(group) is not str:
        return CUSTOM
    found = _KINDS.get(group)
    if found is not None:
        return found
    kind = CUSTOM
    if (
        0 < len(group) <= 32
        and group.replace("_", "").replace("-", "").replace(".", "").isalnum()
        and group.isascii()
    ):
        kind = group
    if kind != CUSTOM:
        if len(_KINDS) >= MAX_KINDS:
            return CUSTOM  # past the bound, a new group is custom: wide-event keys stay few
        _KINDS[group] = kind
    return kind


UNMATCHED = "<unmatched>"
REDIRECT = "<redirect>"
BAD_REQUEST = "<bad request>"
NO_ROUTE = "<no route>"


def route_label(record: RequestRecord, by_path: bool = False) -> str:
    """A bounded name for the request, whoever sent it: its route template; without one, a
    label of its status: `<unmatched>` (404: scanners, typos), `<redirect>` (3xx: a trailing
    slash added, a login page), `<bad request>` (400: a Host not allowed), `<no route>`
    (anything else). The raw path only when the user opted in (`by_path`,
    ``OTEL_BRIDGE_UNROUTED=path``): an app whose paths are its routes."""
    if record.route is not None:
        return record.route
    if by_path and record.path:
        return record.path
    status = record.status
    if status == 404:
        return UNMATCHED
    if 300 <= status < 400:
        return REDIRECT
    if status == 400:
        return BAD_REQUEST
    return NO_ROUTE


class RecordExporter:
    """Base class of the views: receives finished records on the bridge's background thread.

    Subclasses implement `export()`. They may raise: the bridge counts the failure under
    `bridge.errors["exporter.<name>"]` and carries on with the next exporter. The bridge hands
    each exporter its `Health` (`attach()`), where it counts its own failures and drops.
    """

    name: str = "exporter"
    health: Health
    # False for a view that needs no records (it is only attached, flushed and shut down):
    # when no exporter reads them, the bridge builds none.
    reads_records: bool = True
    # True for a view whose export() only updates memory and never blocks (the expvar
    # statistics): it runs on the export thread itself. Any other view gets a lane, its own
    # thread and bounded queue, so that when it blocks it holds up only itself.
    in_memory: bool = False

    def attach(self, health: Health) -> None:
        """Called once by the bridge that will call `export()`."""
        self.health = health

    def export(self, records: Sequence[RequestRecord]) -> None:
        """Handle a batch of finished records, oldest first."""
        raise NotImplementedError

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Push out anything buffered; return False if that did not finish in time."""
        return True

    def shutdown(self) -> None:
        """Release sockets, files and threads. Called once."""
