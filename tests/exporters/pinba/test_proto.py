from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bridge.exporters.pinba._proto import DecodeError, PinbaRequest, decode, encode, seconds

from .reference import FIELDS, request_class

f32 = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_subnormal=False, width=32)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
text = st.text(max_size=20)


@st.composite
def requests(draw: st.DrawFn) -> PinbaRequest:
    n = draw(st.integers(0, 5))
    counts = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    words = draw(st.lists(text, max_size=8))
    index = st.integers(0, max(0, len(words) - 1))
    return PinbaRequest(
        hostname=draw(text),
        server_name=draw(text),
        script_name=draw(text),
        request_count=draw(u32),
        document_size=draw(u32),
        memory_peak=draw(u32),
        request_time=draw(f32),
        ru_utime=draw(f32),
        ru_stime=draw(f32),
        timer_hit_count=draw(st.lists(st.integers(1, 2**32 - 1), min_size=n, max_size=n)),
        timer_value=draw(st.lists(f32, min_size=n, max_size=n)),
        timer_tag_count=counts,
        timer_tag_name=draw(st.lists(index, min_size=sum(counts), max_size=sum(counts))),
        timer_tag_value=draw(st.lists(index, min_size=sum(counts), max_size=sum(counts))),
        dictionary=words,
        status=draw(u32),
        memory_footprint=draw(u32),
        schema=draw(text),
        tag_name=draw(st.lists(index, max_size=3)),
        tag_value=draw(st.lists(index, max_size=3)),
        timer_ru_utime=draw(st.lists(f32, min_size=n, max_size=n)),
        timer_ru_stime=draw(st.lists(f32, min_size=n, max_size=n)),
    )


def as_reference(message: PinbaRequest) -> object:
    reference = request_class()()
    for _, name, label, _ in FIELDS:
        value = getattr(message, name)
        if label == "repeated":
            getattr(reference, name).extend(value)
        elif name != "schema" or value:
            setattr(reference, name, value)
    return reference


@settings(max_examples=300, deadline=None)
@given(requests())
def test_encoding_matches_the_protobuf_package_byte_for_byte(message: PinbaRequest) -> None:
    reference = as_reference(message)
    # protobuf serialises known fields in number order, unpacked for proto2: as php-pinba.
    assert encode(message) == reference.SerializeToString()  # type: ignore[attr-defined]
    assert decode(encode(message)) == message


def test_required_fields_are_sent_even_when_zero() -> None:
    data = encode(PinbaRequest())
    assert data[0] == 0x0A, "hostname first: never pinba2's v1 header nibble"
    parsed = request_class()()
    parsed.ParseFromString(data)
    assert parsed.IsInitialized()
    assert decode(data) == PinbaRequest()


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        (-1.0, 0.0),
        (math.nan, 0.0),
        (math.inf, 3.4028234663852886e38),
        (1e-40, 0.0),
        (1e40, 3.4028234663852886e38),
        (0.5, 0.5),
    ],
)
def test_times_are_made_acceptable_to_the_collectors(raw: float, sent: float) -> None:
    assert seconds(raw) == sent
    message = decode(
        encode(
            PinbaRequest(
                request_time=raw, timer_value=[raw], timer_hit_count=[0], timer_tag_count=[0]
            )
        )
    )
    assert message.request_time == pytest.approx(sent, rel=1e-6)
    assert message.timer_value == [pytest.approx(sent, rel=1e-6)]
    assert message.timer_hit_count == [1], "a zero hit count would drop the packet"


def test_uint32_fields_are_clipped_not_wrapped() -> None:
    message = decode(encode(PinbaRequest(document_size=2**40, memory_peak=-5, status=2**33)))
    assert (message.document_size, message.memory_peak, message.status) == (2**32 - 1, 0, 2**32 - 1)


def test_decoder_accepts_packed_fields_and_skips_unknown_ones() -> None:
    reference = request_class()()
    reference.hostname = "h"
    for name in ("server_name", "script_name"):
        setattr(reference, name, "x")
    for name in ("request_count", "document_size", "memory_peak"):
        setattr(reference, name, 1)
    for name in ("request_time", "ru_utime", "ru_stime"):
        setattr(reference, name, 0.5)
    data = reference.SerializeToString()
    packed_hits = b"\x52\x02\x03\x04"  # field 10, packed [3, 4]
    packed_values = b"\x5a\x08" + struct.pack("<ff", 0.25, 0.5)
    unknown = b"\xf8\x01\x07" + b"\x92\x02\x01z"  # field 31 varint, field 34 bytes
    message = decode(data + packed_hits + packed_values + unknown)
    assert message.timer_hit_count == [3, 4]
    assert message.timer_value == [0.25, 0.5]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "required fields missing"),
        (b"\x0a\x05ab", "runs past the end"),
        (b"\x0a", "truncated varint"),
        (b"\x3d\x00", "truncated float"),
        (b"\x0b", "unsupported wire type"),
        (b"\x20" + b"\xff" * 11, "varint too long"),
    ],
)
def test_malformed_datagrams_raise_decode_error(data: bytes, error: str) -> None:
    with pytest.raises(DecodeError, match=error):
        decode(data)
