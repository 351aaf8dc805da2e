"""Our packets against the PHP extension's, byte for byte, for the same input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otel_bridge.exporters.pinba._packet import (
    PacketFields,
    PacketTimer,
    assemble,
    merge_timers,
    php_string,
    timer_tags,
)
from otel_bridge.exporters.pinba._proto import decode

from .php import php_send, require_php

pytestmark = pytest.mark.integration


def ours(spec: dict[str, Any]) -> bytes:
    timers = merge_timers(
        PacketTimer(
            timer_tags(timer["tags"].items()),
            timer["value"],
            timer["hits"],
            timer["rusage"][0],
            timer["rusage"][1],
        )
        for timer in spec["timers"]
    )
    fields = PacketFields(
        hostname=spec.get("hostname", ""),
        server_name=spec.get("server_name", "unknown"),
        script_name=spec.get("script_name", "unknown"),
        request_count=spec.get("request_count", 0),
        document_size=spec.get("document_size", 0),
        memory_peak=spec.get("memory_peak", 0),
        memory_footprint=spec.get("memory_footprint", 0),
        request_time=spec.get("request_time", 0.0),
        ru_utime=spec.get("rusage", [0.0, 0.0])[0],
        ru_stime=spec.get("rusage", [0.0, 0.0])[1],
        status=spec.get("status", 0),
        schema=spec.get("schema", ""),
    )
    tags = {name: php_string(value) for name, value in spec["tags"].items()}
    return assemble(fields, tags, timers)


def timer(
    op: str,
    tags: dict[str, Any],
    value: float,
    hits: int = 1,
    rusage: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    return {"op": op, "tags": tags, "value": value, "hits": hits, "rusage": list(rusage)}


BASE = {
    "hostname": "host-A",
    "server_name": "srv.example",
    "script_name": "/index.php",
    "request_count": 7,
    "document_size": 12345,
    "memory_peak": 2097152,
    "memory_footprint": 4194304,
    "rusage": [0.5, 0.25],
    "request_time": 1.5,
    "status": 200,
    "schema": "http",
}

CASES = {
    "no tags, no timers": {**BASE, "tags": {}, "timers": []},
    "request tags only": {
        **BASE,
        "tags": {"lang": "en", "app": "shop", "zz": "last"},
        "timers": [],
    },
    # The research fixture client_class_00: merging, hit counts, rusage, mixed tag types.
    "client class fixture": {
        **BASE,
        "tags": {"app": "shop", "lang": "en"},
        "timers": [
            timer("setTimer", {"group": "db", "op": "select"}, 0.125, 2, (0.125, 0.0625)),
            timer("setTimer", {"group": "db", "op": "update", "table": "users"}, 0.5),
            timer("setTimer", {"group": "cache", "op": "get"}, 0.001953125, 3),
            timer("addTimer", {"op": "select", "group": "db"}, 0.125, 2),
            timer("setTimer", {"n": 42, "group": "mixed", "f": 1.5, "b": True}, 0.0),
        ],
    },
    "unicode and repeated words": {
        **BASE,
        "script_name": "/café/{id}",
        "server_name": "пример.рф",
        "tags": {"région": "île", "same": "same"},
        "timers": [
            timer("setTimer", {"same": "île", "x": "same"}, 0.25),
            timer("setTimer", {"région": "x"}, 0.75, 5, (0.5, 0.25)),
        ],
    },
    "times below a microsecond": {
        **BASE,
        "request_time": 0.001953125,
        "rusage": [0.0000015, 0.3],
        "tags": {},
        "timers": [
            timer("setTimer", {"a": "b"}, 0.0000125, 1, (0.0000015, 0.001953125)),
            timer("addTimer", {"a": "b"}, 0.1, 2, (0.2, 0.3)),
        ],
    },
    "zero and empty values": {
        "hostname": "h",
        "script_name": "s",
        "server_name": "",
        "rusage": [0.0, 0.0],
        "request_time": 0.0,
        "status": 0,
        "tags": {"empty": ""},
        "timers": [timer("setTimer", {"false": False, "zero": 0, "float": 0.1}, 0.0)],
    },
}


@pytest.mark.parametrize("case", CASES)
def test_same_input_gives_the_same_bytes_as_php_pinba(case: str, tmp_path: Path) -> None:
    require_php()
    spec = CASES[case]
    theirs = php_send(spec, tmp_path)
    mine = ours(spec)
    assert decode(mine) == decode(theirs)
    assert mine == theirs


def test_php_float_strings_match_php(tmp_path: Path) -> None:
    require_php()
    import subprocess

    values = [
        1e20,
        1.5e-7,
        0.1,
        0.1 + 0.2,
        -0.0,
        1.0,
        123456789012345678.0,
        2.5,
        -3.75e-5,
        1e15,
        1e14,
        99999999999999.9,
        float("inf"),
        float("nan"),
    ]
    code = (
        "foreach (["
        + ", ".join("INF" if v == float("inf") else "NAN" if v != v else repr(v) for v in values)
        + '] as $v) { echo (string)$v, "\\n"; }'
    )
    result = subprocess.run(["php", "-n", "-r", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == [php_string(v) for v in values]
