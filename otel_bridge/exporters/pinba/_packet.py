"""Building a Pinba.Request the way php-pinba 1.1.2 does: dictionary order, merged timers, PHP
strings — so the same input gives the same bytes (see tests/exporters/pinba/test_conformance.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from otel_bridge._strings import php_string
from otel_bridge.exporters.pinba._proto import PinbaRequest, encode

__all__ = ["PacketFields", "PacketTimer", "assemble", "merge_timers", "php_string", "timer_tags"]


def timer_tags(tags: Iterable[tuple[str, object]]) -> tuple[tuple[str, str], ...]:
    """Tags as Pinba pairs, sorted by name: multi-valued tags repeat the name (as pynba did)."""
    pairs: list[tuple[str, str]] = []
    for name, value in tags:
        if isinstance(value, (tuple, list)):
            pairs.extend((name, php_string(item)) for item in value)
        else:
            pairs.append((name, php_string(value)))
    # Byte order of the names, as PHP's sort; a stable sort keeps multi-values in order.
    pairs.sort(key=lambda pair: pair[0].encode("utf-8", "replace"))
    return tuple(pairs)


class PacketTimer(NamedTuple):
    """One timer as it goes into the packet: tags (sorted pairs), total seconds, hits, CPU."""

    tags: tuple[tuple[str, str], ...]
    value: float
    hit_count: int = 1
    ru_utime: float = 0.0
    ru_stime: float = 0.0


def _microseconds(value: float) -> float:
    # php-pinba keeps timer values and rusage as timevals: whole microseconds.
    if not value > 0:
        return 0.0
    return int(value * 1_000_000) / 1_000_000


def merge_timers(timers: Iterable[PacketTimer]) -> list[PacketTimer]:
    """Merge timers with the same tag set (order of first appearance), summing everything.

    Values are truncated to whole microseconds first, as php-pinba stores them.
    """
    merged: dict[tuple[tuple[str, str], ...], PacketTimer] = {}
    for raw in timers:
        timer = PacketTimer(
            raw.tags,
            _microseconds(raw.value),
            raw.hit_count,
            _microseconds(raw.ru_utime),
            _microseconds(raw.ru_stime),
        )
        existing = merged.get(timer.tags)
        if existing is None:
            merged[timer.tags] = timer
        else:
            merged[timer.tags] = PacketTimer(
                timer.tags,
                existing.value + timer.value,
                existing.hit_count + timer.hit_count,
                existing.ru_utime + timer.ru_utime,
                existing.ru_stime + timer.ru_stime,
            )
    return list(merged.values())


class PacketFields(NamedTuple):
    """The scalar fields of a Pinba.Request (times in seconds, sizes in bytes)."""

    hostname: str
    server_name: str
    script_name: str
    request_count: int
    document_size: int
    memory_peak: int
    memory_footprint: int
    request_time: float
    ru_utime: float
    ru_stime: float
    status: int
    schema: str


def assemble(
    fields: PacketFields, request_tags: Mapping[str, str], timers: Sequence[PacketTimer]
) -> bytes:
    """Encode one request, dictionary-encoding tags exactly as php-pinba orders them.

    `timers` must already be merged (`merge_timers`) with sorted tags (`timer_tags`).
    """
    return encode(message(fields, request_tags, timers))


def message(
    fields: PacketFields, request_tags: Mapping[str, str], timers: Sequence[PacketTimer]
) -> PinbaRequest:
    """The `PinbaRequest` `assemble()` encodes (dictionary built in php-pinba's order)."""
    words: dict[str, int] = {}

    def index(word: str) -> int:
        found = words.get(word)
        if found is None:
            found = words[word] = len(words)
        return found

    result = PinbaRequest(
        hostname=fields.hostname,
        server_name=fields.server_name,
        script_name=fields.script_name,
        request_count=fields.request_count,
        document_size=fields.document_size,
        memory_peak=fields.memory_peak,
        request_time=fields.request_time,
        ru_utime=fields.ru_utime,
        ru_stime=fields.ru_stime,
        status=fields.status,
        memory_footprint=fields.memory_footprint,
        schema=fields.schema,
    )
    # Request tags sorted by name; each adds its value, then its name.
    for name in sorted(request_tags, key=lambda n: n.encode("utf-8", "replace")):
        result.tag_value.append(index(request_tags[name]))
        result.tag_name.append(index(name))
    for timer in timers:
        result.timer_hit_count.append(timer.hit_count)
        result.timer_value.append(timer.value)
        result.timer_tag_count.append(len(timer.tags))
        for name, value in timer.tags:
            result.timer_tag_name.append(index(name))
            result.timer_tag_value.append(index(value))
        result.timer_ru_utime.append(timer.ru_utime)
        result.timer_ru_stime.append(timer.ru_stime)
    result.dictionary = list(words)
    return result
