"""The exporter's encoder: the same bytes as `assemble()`, with the per-route work cached.

A route's packets have the same *shape* request after request — the same request tags and the
same merged timer tag sets, so the same dictionary and the same tag indices (fields 12-15 and
20-21). Those fragments are encoded once per shape and reused; per packet only the scalars,
the hit counts, the times and the CPU of the timers are encoded. The caches are bounded (a
cleared cache costs a re-encode, never memory).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from otel_bridge.exporters.pinba._packet import PacketFields, PacketTimer
from otel_bridge.exporters.pinba._proto import UINT32_MAX, seconds

__all__ = ["PacketEncoder"]

_SCALARS = struct.Struct("<BfBfBf")
Shape = tuple[tuple[tuple[str, str], ...], tuple[tuple[tuple[str, str], ...], ...]]


_ONE_BYTE = tuple(bytes((value,)) for value in range(0x80))
# Field 10 (timer_hit_count, key 0x50) with counts below 128, encoded.
_HITS = tuple(bytes((0x50, value)) for value in range(0x80))


def _varint(value: int) -> bytes:
    # Unrolled up to four bytes (values below 2**28: sizes, statuses, counts, memory up to
    # 256 MiB); the loop only beyond.
    if value < 0x80:
        return _ONE_BYTE[value] if value >= 0 else _ONE_BYTE[0]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, (value >> 7) & 0x7F | 0x80, value >> 14))
    if value < 0x10000000:
        return bytes(
            (
                value & 0x7F | 0x80,
                (value >> 7) & 0x7F | 0x80,
                (value >> 14) & 0x7F | 0x80,
                value >> 21,
            )
        )
    value = min(value, UINT32_MAX)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_text(key: bytes, text: str) -> bytes:
    data = text.encode("utf-8", "replace")
    return key + _varint(len(data)) + data


class PacketEncoder:
    """Encodes packets byte-identical to `assemble()`, caching fragments per shape.

    Args:
        max_entries: bound of each cache (shapes, strings); a full cache is cleared.
    """

    def __init__(self, max_entries: int = 1024) -> None:
        self._max = max_entries
        self._shapes: dict[Shape, tuple[bytes, bytes]] = {}
        self._strings: dict[bytes, dict[str, bytes]] = {}
        # Timer count → (values' struct, CPU times' struct, both CPU fields all zero).
        self._packers: dict[int, tuple[struct.Struct, struct.Struct, bytes]] = {}
        # (hostname, server_name, script_name) → fields 1-3, encoded.
        self._names: dict[tuple[str, str, str], bytes] = {}

    def _text(self, key: bytes, text: str) -> bytes:
        strings = self._strings.get(key)
        if strings is None:
            strings = self._strings[key] = {}
        found = strings.get(text)
        if found is None:
            if len(strings) >= self._max:
                strings.clear()
            found = strings[text] = _field_text(key, text)
        return found

    def _shape(self, shape: Shape) -> tuple[bytes, bytes]:
        found = self._shapes.get(shape)
        if found is not None:
            return found
        request_tags, timer_tags = shape
        words: dict[str, int] = {}

        def index(word: str) -> int:
            position = words.get(word)
            if position is None:
                position = words[word] = len(words)
            return position

        tag_names: list[int] = []
        tag_values: list[int] = []
        by_name = sorted(request_tags, key=lambda pair: pair[0].encode("utf-8", "replace"))
        for name, value in by_name:
            tag_values.append(index(value))
            tag_names.append(index(name))
        timers = bytearray()
        names = bytearray()
        values = bytearray()
        for tags in timer_tags:
            timers += b"\x60" + _varint(len(tags))
            for name, value in tags:
                names += b"\x68" + _varint(index(name))
                values += b"\x70" + _varint(index(value))
        dictionary = b"".join(_field_text(b"\x7a", word) for word in words)
        middle = bytes(timers + names + values) + dictionary
        tail = b"".join(b"\xa0\x01" + _varint(i) for i in tag_names) + b"".join(
            b"\xa8\x01" + _varint(i) for i in tag_values
        )
        if len(self._shapes) >= self._max:
            self._shapes.clear()
        self._shapes[shape] = (middle, tail)
        return middle, tail

    def _structs(self, count: int) -> tuple[struct.Struct, struct.Struct, bytes]:
        found = self._packers.get(count)
        if found is None:
            # Field 11 (key 0x5d) and fields 22/23 (two-byte keys) as key+float32 pairs.
            rusage = struct.Struct("<" + "Hf" * count)
            zeros = rusage.pack(*(0x01B5, 0.0) * count) + rusage.pack(*(0x01BD, 0.0) * count)
            found = (struct.Struct("<" + "Bf" * count), rusage, zeros)
            if len(self._packers) < self._max:
                self._packers[count] = found
        return found

    def encode(
        self,
        fields: PacketFields,
        request_tags: Mapping[str, str],
        timers: Sequence[PacketTimer],
    ) -> bytes:
        """Same output as `assemble()` for timers merged, tags sorted, times finite and ≥ 0."""
        if not timers:
            return self.encode_parts(fields, request_tags, (), b"", b"")
        shape = (timers[0].tags,) if len(timers) == 1 else tuple([t.tags for t in timers])
        front, back = self._timer_fields(timers)
        return self.encode_parts(fields, request_tags, shape, front, back)

    def encode_parts(
        self,
        fields: PacketFields,
        request_tags: Mapping[str, str],
        timer_tags: tuple[tuple[tuple[str, str], ...], ...],
        front: bytes,
        back: bytes,
    ) -> bytes:
        """`encode` with the timers' part made: their tags, the bytes of their hit counts and
        values (`front`), those of their CPU times (`back`), as `_timer_fields` makes them
        (or otel_bridge._speedups' pinba_timers)."""
        if request_tags or timer_tags:
            shape = (tuple(request_tags.items()) if request_tags else (), timer_tags)
            found = self._shapes.get(shape)  # (made before, the usual case: no call)
            middle, tail = found if found is not None else self._shape(shape)
        else:
            middle = tail = b""  # what _shape() gives for no tags and no timers
        names_key = (fields.hostname, fields.server_name, fields.script_name)
        names = self._names.get(names_key)
        if names is None:
            if len(self._names) >= self._max:
                self._names.clear()
            names = self._names[names_key] = (
                self._text(b"\x0a", fields.hostname)
                + self._text(b"\x12", fields.server_name)
                + self._text(b"\x1a", fields.script_name)
            )
        head = b"".join(
            (
                names,
                b"\x20",
                _varint(fields.request_count),
                b"\x28",
                _varint(fields.document_size),
                b"\x30",
                _varint(fields.memory_peak),
                _SCALARS.pack(
                    0x3D,
                    seconds(fields.request_time),
                    0x45,
                    seconds(fields.ru_utime),
                    0x4D,
                    seconds(fields.ru_stime),
                ),
            )
        )
        status = b"\x80\x01" + _varint(fields.status) + b"\x88\x01"
        status += _varint(fields.memory_footprint)
        if fields.schema:
            status += self._text(b"\x9a\x01", fields.schema)
        if not timer_tags:
            return head + middle + status + tail
        return b"".join((head, front, middle, status, tail, back))

    def _timer_fields(self, timers: Sequence[PacketTimer]) -> tuple[bytes, bytes]:
        """The timers' hit counts (field 10) then values (11); their CPU times (22, 23)."""
        values, rusage, zeros = self._structs(len(timers))
        hits = bytearray()
        flat_values: list[float | int] = []
        measured = False  # any CPU time (OTEL_BRIDGE_TIMER_CPU): else fields 22/23 are zeros
        for timer in timers:
            count = timer.hit_count
            hits += _HITS[count] if 0 < count < 0x80 else b"\x50" + _varint(max(count, 1))
            flat_values += (0x5D, timer.value)
            if timer.ru_utime or timer.ru_stime:
                measured = True
        if measured:
            flat_utime: list[float | int] = []
            flat_stime: list[float | int] = []
            for timer in timers:
                flat_utime += (0x01B5, timer.ru_utime)
                flat_stime += (0x01BD, timer.ru_stime)
            zeros = rusage.pack(*flat_utime) + rusage.pack(*flat_stime)
        return bytes(hits) + values.pack(*flat_values), zeros
