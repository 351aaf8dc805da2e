from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bridge.exporters.pinba._encoder import PacketEncoder
from otel_bridge.exporters.pinba._packet import (
    PacketFields,
    PacketTimer,
    assemble,
    merge_timers,
    timer_tags,
)

words = st.sampled_from(["db", "op", "select", "group", "é", "", "x" * 130, "cache", "1"])
times = st.integers(0, 10**10).map(lambda ns: ns // 1000 / 1e6)
fields = st.builds(
    PacketFields,
    hostname=words,
    server_name=words,
    script_name=words,
    request_count=st.integers(0, 2**33),
    document_size=st.integers(0, 2**33),
    memory_peak=st.integers(0, 2**33),
    memory_footprint=st.integers(0, 2**33),
    request_time=times,
    ru_utime=times,
    ru_stime=times,
    status=st.integers(0, 600),
    schema=st.sampled_from(["", "http", "https"]),
)
timers = st.lists(
    st.builds(
        PacketTimer,
        tags=st.lists(st.tuples(words, words), max_size=4).map(timer_tags),
        value=times,
        hit_count=st.integers(1, 300),
        # Zero unless OTEL_BRIDGE_TIMER_CPU: the encoder has a path for all zeros.
        ru_utime=st.one_of(st.just(0.0), times),
        ru_stime=st.one_of(st.just(0.0), times),
    ),
    max_size=12,
).map(merge_timers)


@settings(max_examples=300, deadline=None)
@given(fields, st.dictionaries(words, words, max_size=4), timers)
def test_cached_encoder_is_byte_identical_to_assemble(
    packet_fields: PacketFields, tags: dict[str, str], packet_timers: list[PacketTimer]
) -> None:
    encoder = PacketEncoder(max_entries=2)  # tiny caches: evictions are exercised too
    expected = assemble(packet_fields, tags, packet_timers)
    assert encoder.encode(packet_fields, tags, packet_timers) == expected
    assert encoder.encode(packet_fields, tags, packet_timers) == expected, "from the cache"
