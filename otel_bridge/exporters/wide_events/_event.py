"""RequestRecord → one flat wide event, with OpenTelemetry semantic-convention names.

Answers "what did this request do": identity, HTTP, time (to response complete, to app
return, CPU, queue time from `X-Request-Start`), a summary of its timers by kind, the error
(type, truncated message, location), the request's tags and the fields the app set. Secrets
never reach an event: no Authorization or Cookie header is copied, and the values of secret
query and matrix parameters are redacted (`otel_bridge._secrets`). Every value copied from the
request is capped at `VALUE_LIMIT` characters and marked when cut.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

from otel_bridge._compiled import set_up
from otel_bridge._database import FIGURES
from otel_bridge._secrets import SECRET_PARAMS, cap, redact_path, redact_query
from otel_bridge.exporters.wide_events._sinks import format_json
from otel_bridge.record import RequestRecord, Timer

__all__ = ["EventBuilder", "queue_time_ms"]

MESSAGE_LIMIT = 500
# The fixed fields of a request event: build() puts them first, line() writes them itself.
_BASE_KEYS = frozenset(
    (
        "timestamp",
        "event",
        "service.name",
        "host.name",
        "process.pid",
        "request.id",
        "trace_id",
        "span_id",
        "http.request.method",
        "http.route",
        "url.path",
        "url.query",
        "http.response.status_code",
        "http.response.body.size",
        "http.response.completed",
        "user_agent.original",
        "client.address",
        "server.address",
        "duration_ms",
        "app_duration_ms",
        "cpu_ms",
        "queue_ms",
    )
)
# The JSON encoder's own pieces, as format_json() uses them: strings (C, non-ASCII kept),
# integers (int.__repr__, also for int subclasses such as HTTPStatus) and floats.
_quote = encode_basestring
_int = int.__repr__
_float = float.__repr__


# A timer kind → its two keys in the summary, as JSON ('"timers.db.count":' and the ms one).
_KIND_KEYS: dict[str, tuple[str, str]] = {}
_KIND_KEYS_KEPT = 256


def _timers_text(record: RequestRecord) -> str:
    """The timers' summary as `_extras` has it (count, then each kind's count and ms in
    kind order, then the dropped), as the JSON encoder writes those numbers."""
    total = 0
    by_kind: dict[str, list[Any]] = {}
    for timer in record.timers:
        hits = timer.hit_count
        total += hits
        totals = by_kind.get(timer.kind)
        if totals is None:
            by_kind[timer.kind] = [hits, 0.0 + timer.duration_ns / 1e6]
        else:
            totals[0] += hits
            totals[1] += timer.duration_ns / 1e6
    parts = [',"timers.count":', _int(total)]
    for kind in sorted(by_kind) if len(by_kind) > 1 else by_kind:
        count, milliseconds = by_kind[kind]
        keys = _KIND_KEYS.get(kind)
        if keys is None:
            keys = (
                "," + _quote(f"timers.{kind}.count") + ":",
                "," + _quote(f"timers.{kind}.ms") + ":",
            )
            if len(_KIND_KEYS) < _KIND_KEYS_KEPT:  # kinds are few (record.timer_kind)
                _KIND_KEYS[kind] = keys
        parts += (keys[0], _int(count), keys[1], _float(round(milliseconds, 3)))
    if record.timers_dropped:
        parts += ',"timers.dropped":', _int(record.timers_dropped)
    return "".join(parts)


# The database figures (otel_bridge._database.QueryCounts.fields) → their JSON keys.
_DB_KEYS = {name: "," + _quote(name[1:]) + ":" for name in FIGURES}


def _figures_text(fields: Mapping[str, object]) -> str | None:
    """The database figures written straight, as the JSON encoder writes them, when `fields`
    holds them alone, as plain finite numbers; None when it holds anything else."""
    parts: list[str] = []
    for name, value in fields.items():
        key = _DB_KEYS.get(name)
        if key is None:
            return None
        kind = type(value)
        if kind is int:
            parts += key, _int(value)
        elif kind is float and math.isfinite(value):  # type: ignore[arg-type]
            parts += key, _float(value)
        else:
            return None
    return "".join(parts)


def _compiled_views() -> Any:
    """otel_bridge._speedups set up for the event: its `timers_text` and `figures_text` do
    what `_timers_text` and `_figures_text` do, and call them for anything they do not do
    themselves (a kind seen for the first time, numbers too large); None without the C core."""
    return set_up(
        "setup_views",
        timers=RequestRecord._fields.index("timers"),
        dropped=RequestRecord._fields.index("timers_dropped"),
        kind=Timer._fields.index("kind"),
        duration=Timer._fields.index("duration_ns"),
        hits=Timer._fields.index("hit_count"),
        kind_keys=_KIND_KEYS,
        fallback=_timers_text,
        db_keys=_DB_KEYS,
        figures_fallback=_figures_text,
    )


_COMPILED = _compiled_views()
_COMPILED_TIMERS_TEXT: Callable[[RequestRecord], str] | None = (
    _COMPILED.timers_text if _COMPILED is not None else None
)
_COMPILED_FIGURES_TEXT: Callable[[Mapping[str, object]], str | None] | None = (
    _COMPILED.figures_text if _COMPILED is not None else None
)


def _ms(ns: int) -> float:
    """Nanoseconds as milliseconds with three decimals, half a microsecond rounded up: the
    same number as ``round(ns / 1e6, 3)`` but at exact halves, and a third of its cost."""
    return (ns + 500) // 1000 / 1000


def queue_time_ms(header: str | None, start_time_ns: int) -> float | None:
    """Time between the front proxy and the app, from `X-Request-Start` (`t=<epoch>` in s, ms
    or µs, as nginx and Heroku write it); None if absent or implausible."""
    if not header:
        return None
    match = re.search(r"(\d+(?:\.\d+)?)", header)
    if match is None:
        return None
    value = float(match.group(1))
    # Decide the unit by magnitude: seconds ~1.7e9, ms ~1.7e12, µs ~1.7e15.
    for scale in (1e9, 1e6, 1e3):
        candidate = value * scale
        if 1e18 <= candidate < 1e20:
            queued = (start_time_ns - candidate) / 1e6
            return round(queued, 3) if 0 <= queued < 3_600_000 else None
    return None


class _Timestamps:
    """RFC 3339 UTC with microseconds; the date and time part formatted once per second."""

    def __init__(self) -> None:
        # One tuple, replaced whole: another thread sees the old pair or the new one.
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, time_ns: int) -> str:
        second, nanos = divmod(time_ns, 1_000_000_000)
        cached = self._cached
        if cached[0] != second:
            cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._cached = cached
        return f"{cached[1]}.{nanos // 1000:06d}Z"


def _location(exception: BaseException) -> str | None:
    frames = traceback.extract_tb(exception.__traceback__) if exception.__traceback__ else []
    if not frames:
        return None
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"


# Fields a zero-code record cannot know (no wrapper saw the response or the CPU).
_WRAPPER_ONLY = (
    "http.response.body.size",
    "http.response.completed",
    "app_duration_ms",
    "cpu_ms",
)


class EventBuilder:
    """Builds events from records.

    Args:
        request_id_header: header whose value becomes `request.id` (else the trace id).
        secret_params: more query parameters whose values are redacted (names holding a
            secret word always are).
        trusted_proxies: whether `X-Forwarded-For`'s first address is the client's.
        compiled: whether the C core (otel_bridge._speedups) may write parts of the event.
    """

    def __init__(
        self,
        *,
        request_id_header: str = "x-request-id",
        secret_params: Sequence[str] = (),
        trust_forwarded_for: bool = False,
        compiled: bool = True,
    ) -> None:
        self.request_id_header = request_id_header.lower()
        # The timers' summary: in C where it is built and allowed (OTEL_BRIDGE_PURE_PYTHON).
        self._timers_text = (
            _COMPILED_TIMERS_TEXT if compiled and _COMPILED_TIMERS_TEXT else _timers_text
        )
        self._figures_text = (
            _COMPILED_FIGURES_TEXT if compiled and _COMPILED_FIGURES_TEXT else _figures_text
        )
        self.secret_params = SECRET_PARAMS | {name.lower() for name in secret_params}
        self.trust_forwarded_for = trust_forwarded_for
        self._timestamp = _Timestamps()
        # (resource, pid, their fields as a JSON fragment) for line(): one tuple, replaced whole.
        self._process: tuple[Any, int, str] = (None, 0, "")

    def request_id(self, record: RequestRecord, trace_hex: str | None = None) -> str:
        """The request's header if it has a usable one, else its trace id (`trace_hex`, if
        already formatted), else a digest of what identifies it."""
        given = record.headers.get(self.request_id_header)
        if given and len(given) <= 200 and given.isprintable():
            return given
        return (
            (trace_hex or f"{record.trace_id:032x}")
            if record.trace_id
            else hashlib.sha1(
                f"{record.pid}-{record.start_time_ns}-{record.path}".encode()
            ).hexdigest()[:32]
        )

    def _query(self, query: str) -> str:
        # Cut first: redaction then reads a bounded string, whatever the client sent.
        return redact_query(cap(query), self.secret_params) if query else query

    def _path(self, path: str) -> str:
        return redact_path(cap(path), self.secret_params)

    def build(self, record: RequestRecord, kind: str = "request") -> dict[str, Any]:
        """The event for `record` (`kind` is "request", or "timeout" for a partial record)."""
        resource: Mapping[str, Any] = record.resource
        event: dict[str, Any] = {
            "timestamp": self._timestamp(record.start_time_ns),
            "event": kind,
            "service.name": resource.get("service.name"),
            "host.name": resource.get("host.name"),
            "process.pid": record.pid,
            "request.id": self.request_id(record),
            "trace_id": f"{record.trace_id:032x}" if record.trace_id else None,
            "span_id": f"{record.span_id:016x}" if record.span_id else None,
            "http.request.method": record.method,
            "http.route": None if record.route is None else cap(record.route),
            "url.path": self._path(record.path),
            "url.query": self._query(record.query) or None,
            "http.response.status_code": record.status or None,
            "http.response.body.size": record.response_bytes,
            "http.response.completed": record.completed,
            "user_agent.original": None if record.user_agent is None else cap(record.user_agent),
            "client.address": self._client(record),
            "server.address": None if record.server_address is None else cap(record.server_address),
            "duration_ms": _ms(record.duration_ns),
            "app_duration_ms": _ms(record.app_duration_ns),
            "cpu_ms": _ms(record.ru_utime_ns + record.ru_stime_ns),
            "queue_ms": queue_time_ms(record.headers.get("x-request-start"), record.start_time_ns),
        }
        if record.interface == "zerocode":
            # What only the wrapper measures (otel_bridge.zerocode): left out, not shown as 0.
            for key in _WRAPPER_ONLY:
                del event[key]
        event.update(self._extras(record))
        return {key: value for key, value in event.items() if value is not None}

    def _extras(self, record: RequestRecord) -> dict[str, Any]:
        """What follows the fixed fields: timers by kind, the error, tags, the app's fields."""
        extras: dict[str, Any] = {}
        if record.timers or record.timers_dropped:
            extras["timers.count"] = sum(timer.hit_count for timer in record.timers)
            by_kind: dict[str, list[float]] = {}
            for timer in record.timers:
                totals = by_kind.setdefault(timer.kind, [0, 0.0])
                totals[0] += timer.hit_count
                totals[1] += timer.duration_ns / 1e6
            for timer_kind, (count, milliseconds) in sorted(by_kind.items()):
                extras[f"timers.{timer_kind}.count"] = count
                extras[f"timers.{timer_kind}.ms"] = round(milliseconds, 3)
            if record.timers_dropped:
                extras["timers.dropped"] = record.timers_dropped
        if record.error_type is not None:
            extras["error.type"] = record.error_type
        if record.exception is not None:
            message = str(record.exception)
            if len(message) > MESSAGE_LIMIT:
                message = message[:MESSAGE_LIMIT] + "…"
            extras["exception.message"] = message
            extras["exception.location"] = _location(record.exception)
        for name, tag in record.tags.items():
            extras[f"tag.{name}"] = tag
        for name, field in record.fields.items():
            # A leading "." marks an integration's own field (otel_bridge.django's db.*).
            extras[name[1:] if name.startswith(".") else f"app.{name}"] = field
        return extras

    def line(self, record: RequestRecord) -> str:
        """The request's event as one JSON line: ``format_json(build(record))`` to the byte,
        written straight from the record (~4 µs a request less than the dict and the encoder;
        what the JSON Lines sinks get when nothing needs the dict: no scrub, no sampling)."""
        plain = not (
            record.timers
            or record.timers_dropped
            or record.error_type is not None
            or record.exception is not None
            or record.tags
            or record.fields
        )
        fields = record.fields
        # The database figures, when the fields are those alone (written straight), or None.
        figures = self._figures_text(fields) if fields else ""
        timers_only = (
            not plain
            and record.error_type is None
            and record.exception is None
            and not record.tags
            and figures is not None
        )
        # Only the timers' summary and the database figures (the usual extras): written
        # straight.
        extras = {} if plain or timers_only else self._extras(record)
        if record.interface == "zerocode" or not _BASE_KEYS.isdisjoint(extras):
            # A field that replaces a fixed one keeps that one's place: the dict knows how.
            return format_json(self.build(record))
        resource = record.resource
        process = self._process
        if process[0] is not resource or process[1] != record.pid:
            fixed = {
                "service.name": resource.get("service.name"),
                "host.name": resource.get("host.name"),
                "process.pid": record.pid,
            }
            fragment = format_json({k: v for k, v in fixed.items() if v is not None})[1:-1]
            process = self._process = (resource, record.pid, "," + fragment)
        trace_id = f"{record.trace_id:032x}" if record.trace_id else None
        request_id = self.request_id(record, trace_id)
        parts = [
            '{"timestamp":"',
            self._timestamp(record.start_time_ns),
            '","event":"request"',
            process[2],
            ',"request.id":',
            _quote(request_id),
        ]
        if trace_id:
            parts += ',"trace_id":"', trace_id, '"'
        if record.span_id:
            parts += ',"span_id":"', f"{record.span_id:016x}", '"'
        parts += ',"http.request.method":', _quote(record.method)
        if record.route is not None:
            parts += ',"http.route":', _quote(cap(record.route))
        parts += ',"url.path":', _quote(self._path(record.path))
        query = self._query(record.query)
        if query:
            parts += ',"url.query":', _quote(query)
        if record.status:
            parts += ',"http.response.status_code":', _int(record.status)
        parts += (
            ',"http.response.body.size":',
            _int(record.response_bytes),
            ',"http.response.completed":',
            "true" if record.completed else "false",
        )
        if record.user_agent is not None:
            parts += ',"user_agent.original":', _quote(cap(record.user_agent))
        client = self._client(record)
        if client is not None:
            parts += ',"client.address":', _quote(client)
        if record.server_address is not None:
            parts += ',"server.address":', _quote(cap(record.server_address))
        parts += (
            ',"duration_ms":',
            _float(_ms(record.duration_ns)),
            ',"app_duration_ms":',
            _float(_ms(record.app_duration_ns)),
            ',"cpu_ms":',
            _float(_ms(record.ru_utime_ns + record.ru_stime_ns)),
        )
        queued = queue_time_ms(record.headers.get("x-request-start"), record.start_time_ns)
        if queued is not None:
            parts += ',"queue_ms":', _float(queued)
        if timers_only:
            if record.timers or record.timers_dropped:
                parts.append(self._timers_text(record))
            if figures:
                parts.append(figures)
        elif extras:
            kept = {key: value for key, value in extras.items() if value is not None}
            if kept:
                parts += ",", format_json(kept)[1:-1]
        parts.append("}")
        return "".join(parts)

    def _client(self, record: RequestRecord) -> str | None:
        if self.trust_forwarded_for:
            forwarded = record.headers.get("x-forwarded-for")
            if forwarded:
                return cap(forwarded.split(",")[0].strip(), 64)
        address = record.client_address
        # A server that takes the client from X-Forwarded-For (uvicorn) may hand over anything.
        return address if address is None or len(address) <= 64 else cap(address, 64)
