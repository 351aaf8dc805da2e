"""Pinba.Request protobuf (proto2) encoding and decoding, written for speed.

Wire format: tony2001/pinba_engine and badoo/pinba2 `pinba.proto`, fields 1-23, as php-pinba
1.1.2 sends them: fields in number order (hostname first, so the first byte is 0x0a and pinba2
never mistakes the datagram for its "v1" framing), every required field present even when
zero, repeated scalars unpacked, times as IEEE-754 float32.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field

__all__ = ["PinbaRequest", "decode", "encode"]

UINT32_MAX = 0xFFFFFFFF
FLOAT32_MIN_NORMAL = 1.1754943508222875e-38
FLOAT32_MAX = 3.4028234663852886e38

_pack_float = struct.Struct("<f").pack
_unpack_float = struct.Struct("<f").unpack_from


@dataclass
class PinbaRequest:
    """One Pinba.Request message; field names and numbers as in pinba.proto."""

    hostname: str = ""
    server_name: str = ""
    script_name: str = ""
    request_count: int = 0
    document_size: int = 0
    memory_peak: int = 0
    request_time: float = 0.0
    ru_utime: float = 0.0
    ru_stime: float = 0.0
    timer_hit_count: list[int] = field(default_factory=list)
    timer_value: list[float] = field(default_factory=list)
    timer_tag_count: list[int] = field(default_factory=list)
    timer_tag_name: list[int] = field(default_factory=list)
    timer_tag_value: list[int] = field(default_factory=list)
    dictionary: list[str] = field(default_factory=list)
    status: int = 0
    memory_footprint: int = 0
    schema: str = ""
    tag_name: list[int] = field(default_factory=list)
    tag_value: list[int] = field(default_factory=list)
    timer_ru_utime: list[float] = field(default_factory=list)
    timer_ru_stime: list[float] = field(default_factory=list)


def _uint32(value: int) -> int:
    if value < 0:
        return 0
    return value if value <= UINT32_MAX else UINT32_MAX


def seconds(value: float) -> float:
    """A time the collectors accept: finite, not negative, not subnormal as a float32."""
    if FLOAT32_MIN_NORMAL <= value < FLOAT32_MAX:
        return value  # the usual time, one comparison (NaN fails it)
    if not value > 0.0 or value != value:  # negative, zero, or NaN
        return 0.0
    if value >= FLOAT32_MAX or math.isinf(value):
        return FLOAT32_MAX
    if value < FLOAT32_MIN_NORMAL:
        return 0.0
    return value


def _varint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _text(out: bytearray, key: int, text: str) -> None:
    data = text.encode("utf-8", "replace")
    out.append(key)
    _varint(out, len(data))
    out += data


def encode(message: PinbaRequest) -> bytes:
    """Serialize `message`; values are clipped into range (uint32, float32 times ≥ 0)."""
    out = bytearray()
    _text(out, 0x0A, message.hostname)
    _text(out, 0x12, message.server_name)
    _text(out, 0x1A, message.script_name)
    out.append(0x20)
    _varint(out, _uint32(message.request_count))
    out.append(0x28)
    _varint(out, _uint32(message.document_size))
    out.append(0x30)
    _varint(out, _uint32(message.memory_peak))
    out.append(0x3D)
    out += _pack_float(seconds(message.request_time))
    out.append(0x45)
    out += _pack_float(seconds(message.ru_utime))
    out.append(0x4D)
    out += _pack_float(seconds(message.ru_stime))
    for value in message.timer_hit_count:
        out.append(0x50)
        _varint(out, _uint32(value) or 1)  # collectors drop a packet with a 0 hit count
    for number in message.timer_value:
        out.append(0x5D)
        out += _pack_float(seconds(number))
    for value in message.timer_tag_count:
        out.append(0x60)
        _varint(out, _uint32(value))
    for value in message.timer_tag_name:
        out.append(0x68)
        _varint(out, _uint32(value))
    for value in message.timer_tag_value:
        out.append(0x70)
        _varint(out, _uint32(value))
    for word in message.dictionary:
        _text(out, 0x7A, word)
    out += b"\x80\x01"
    _varint(out, _uint32(message.status))
    out += b"\x88\x01"
    _varint(out, _uint32(message.memory_footprint))
    if message.schema:
        out.append(0x9A)
        out.append(0x01)
        data = message.schema.encode("utf-8", "replace")
        _varint(out, len(data))
        out += data
    for value in message.tag_name:
        out += b"\xa0\x01"
        _varint(out, _uint32(value))
    for value in message.tag_value:
        out += b"\xa8\x01"
        _varint(out, _uint32(value))
    for number in message.timer_ru_utime:
        out += b"\xb5\x01"
        out += _pack_float(seconds(number))
    for number in message.timer_ru_stime:
        out += b"\xbd\x01"
        out += _pack_float(seconds(number))
    return bytes(out)


class DecodeError(ValueError):
    """The datagram is not a well-formed Pinba.Request."""


_STRINGS = {1: "hostname", 2: "server_name", 3: "script_name", 19: "schema"}
_UINTS = {
    4: "request_count",
    5: "document_size",
    6: "memory_peak",
    16: "status",
    17: "memory_footprint",
}
_FLOATS = {7: "request_time", 8: "ru_utime", 9: "ru_stime"}
_REPEATED_UINTS = {
    10: "timer_hit_count",
    12: "timer_tag_count",
    13: "timer_tag_name",
    14: "timer_tag_value",
    20: "tag_name",
    21: "tag_value",
}
_REPEATED_FLOATS = {11: "timer_value", 22: "timer_ru_utime", 23: "timer_ru_stime"}


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def decode(data: bytes) -> PinbaRequest:
    """Parse a datagram as the collectors do (packed repeated fields accepted too).

    Raises:
        DecodeError: malformed protobuf, or a required field (1-9) missing.
    """
    message = PinbaRequest()
    seen = 0
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if number in _UINTS:
                setattr(message, _UINTS[number], value)
            elif number in _REPEATED_UINTS:
                getattr(message, _REPEATED_UINTS[number]).append(value)
            else:
                continue
        elif wire == 5:
            if pos + 4 > end:
                raise DecodeError("truncated float")
            (number_value,) = _unpack_float(data, pos)
            pos += 4
            if number in _FLOATS:
                setattr(message, _FLOATS[number], number_value)
            elif number in _REPEATED_FLOATS:
                getattr(message, _REPEATED_FLOATS[number]).append(number_value)
            else:
                continue
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > end:
                raise DecodeError(f"field {number} runs past the end of the datagram")
            chunk = data[pos : pos + length]
            pos += length
            if number in _STRINGS:
                setattr(message, _STRINGS[number], chunk.decode("utf-8", "replace"))
            elif number == 15:
                message.dictionary.append(chunk.decode("utf-8", "replace"))
            elif number in _REPEATED_UINTS:  # packed
                inner = 0
                while inner < len(chunk):
                    value, inner = _read_varint(chunk, inner)
                    getattr(message, _REPEATED_UINTS[number]).append(value)
            elif number in _REPEATED_FLOATS:  # packed
                for offset in range(0, len(chunk) - 3, 4):
                    getattr(message, _REPEATED_FLOATS[number]).append(
                        _unpack_float(chunk, offset)[0]
                    )
            else:
                continue
        elif wire == 1:
            pos += 8
            continue
        else:
            raise DecodeError(f"unsupported wire type {wire} for field {number}")
        if 1 <= number <= 9:
            seen |= 1 << (number - 1)
    if pos != end:
        raise DecodeError("trailing bytes")
    if seen != 0x1FF:
        missing = [n for n in range(1, 10) if not seen & (1 << (n - 1))]
        raise DecodeError(f"required fields missing: {missing}")
    return message
