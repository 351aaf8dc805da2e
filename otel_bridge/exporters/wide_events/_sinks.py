"""Where wide events go, and in what format. All of it runs on the bridge's exporter thread.

`OTEL_EXPORTER_WIDE_EVENTS_SINK`: `stdout` (default), `stderr`, `file:PATH` (appended, one
event per line), `logging[:LOGGER]` (a `logging` record per event, the event in `extra` as
`wide_event`, so structlog and any handler plug in), `otlp` (an OpenTelemetry log record per
event, through the process's LoggerProvider). Formats: JSON Lines (default) or logfmt.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

__all__ = ["Sink", "format_json", "format_logfmt", "make_sink"]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


_PLAIN = frozenset((str, int, float, bool, type(None)))
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def format_json(event: Mapping[str, Any]) -> str:
    if type(event) is dict and _PLAIN.issuperset(map(type, event.values())):
        # The usual event: JSON types only. A NaN or infinity makes the encoder refuse, and
        # the event goes the careful way below.
        try:
            return _encode(event)
        except ValueError:
            pass
    return _encode({key: _clean(value) for key, value in event.items()})


_BOOLEANS = {True: "true", False: "false"}
# logfmt quotes a value only when it must: spaces, quotes, '=', backslashes, non-ASCII.
_BARE = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('"=\\')


def format_logfmt(event: Mapping[str, Any]) -> str:
    parts = []
    for key, raw in event.items():
        value = _clean(raw)
        if value is None:
            continue
        text = _BOOLEANS.get(value) if isinstance(value, bool) else str(value)
        assert text is not None
        if not text or not set(text) <= _BARE:
            text = json.dumps(text, ensure_ascii=False)
        parts.append(f"{key}={text}")
    return " ".join(parts)


FORMATS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "json": format_json,
    "logfmt": format_logfmt,
}


class Sink:
    """Writes formatted events; raises on failure (the exporter counts it)."""

    # Whether `write_lines()` takes events already formatted as JSON Lines (the exporter
    # then formats them straight from the records).
    json_lines = False

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        raise NotImplementedError

    def write_lines(self, lines: Sequence[str]) -> None:
        """Write events formatted by `EventBuilder.line()` (only if `json_lines`)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class StreamSink(Sink):
    def __init__(self, stream: Callable[[], TextIO], formatter: Callable[..., str]) -> None:
        self._stream = stream  # looked up per batch: tests and apps may swap sys.stdout
        self._format = formatter
        self.json_lines = formatter is format_json

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.write_lines([self._format(event) for event in events])

    def write_lines(self, lines: Sequence[str]) -> None:
        stream = self._stream()
        stream.write("".join(line + "\n" for line in lines))
        stream.flush()


class FileSink(Sink):
    def __init__(self, path: str, formatter: Callable[..., str]) -> None:
        self.path = path
        self._format = formatter
        self._file: TextIO | None = None
        self.json_lines = formatter is format_json

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.write_lines([self._format(event) for event in events])

    def write_lines(self, lines: Sequence[str]) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        try:
            self._file.write("".join(line + "\n" for line in lines))
            self._file.flush()
        except OSError:
            # A full disk or a rotated file: reopen on the next batch, report this one.
            self.close()
            raise

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


class LoggingSink(Sink):
    def __init__(self, logger: str, formatter: Callable[..., str]) -> None:
        self._logger = logging.getLogger(logger)
        self._format = formatter

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        for event in events:
            self._logger.info(self._format(event), extra={"wide_event": dict(event)})


class OTLPSink(Sink):
    """An OpenTelemetry log record per event (event name `http.request` / `http.timeout`)."""

    def __init__(self, logger_provider: Any = None) -> None:
        from opentelemetry import _logs

        self._logger = _logs.get_logger("otel_bridge.wide_events", logger_provider=logger_provider)
        # SDKs before keyword `emit()` (and LogRecord.event_name) take a LogRecord: there the
        # event name goes into the `event.name` attribute, the convention of that time.
        self._keywords = True

    def write(self, events: Sequence[Mapping[str, Any]]) -> None:
        for event in events:
            attributes = {k: _clean(v) for k, v in event.items() if _clean(v) is not None}
            name = f"http.{event.get('event', 'request')}"
            trace_id, span_id = _ids(event)
            if self._keywords:
                try:
                    self._logger.emit(
                        event_name=name,
                        body=None,
                        attributes=attributes,
                        context=_context(trace_id, span_id),
                    )
                    continue
                except TypeError:
                    self._keywords = False
            from opentelemetry._logs import LogRecord
            from opentelemetry.trace import TraceFlags

            self._logger.emit(
                LogRecord(
                    timestamp=time.time_ns(),
                    trace_id=trace_id,
                    span_id=span_id,
                    trace_flags=TraceFlags(TraceFlags.DEFAULT),
                    attributes={**attributes, "event.name": name},
                )
            )


def _ids(event: Mapping[str, Any]) -> tuple[int, int]:
    # The request's trace, so that a backend links the event to its spans.
    try:
        return int(str(event.get("trace_id") or 0), 16), int(str(event.get("span_id") or 0), 16)
    except ValueError:
        return 0, 0


def _context(trace_id: int, span_id: int) -> Any:
    from opentelemetry import trace

    if not trace_id or not span_id:
        return None
    span = trace.NonRecordingSpan(
        # The sampling decision is not part of the event: flags say nothing.
        trace.SpanContext(trace_id, span_id, is_remote=False)
    )
    return trace.set_span_in_context(span)


def make_sink(spec: str, format_name: str, logger_provider: Any = None) -> Sink:
    """A sink from its setting (already validated by `Settings`)."""
    formatter = FORMATS[format_name]
    if spec == "stdout":
        return StreamSink(lambda: sys.stdout, formatter)
    if spec == "stderr":
        return StreamSink(lambda: sys.stderr, formatter)
    if spec.startswith("file:"):
        return FileSink(spec[5:], formatter)
    if spec == "logging" or spec.startswith("logging:"):
        return LoggingSink(spec.partition(":")[2] or "otel_bridge.wide_events", formatter)
    if spec == "otlp":
        return OTLPSink(logger_provider)
    raise ValueError(spec)
