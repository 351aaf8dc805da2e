"""Our /debug/vars against Go's own expvar handler serving the same variables."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from otel_bridge.exporters.expvar import ExpvarEndpoint, Float, Func, Int, Map, Registry, String

from .goref import build, serve

pytestmark = pytest.mark.integration

EDGE_FLOATS = [
    0.0,
    -0.0,
    1.0,
    2.0,
    1.5,
    -2.5,
    0.1,
    0.30000000000000004,
    123456.0,
    999999.0,
    1e6,
    1234567.0,
    123456789.0,
    1e20,
    1e21,
    1e22,
    0.0001,
    0.00001,
    1e-5,
    1e-6,
    1e-7,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    3.14159,
    100.0,
    1e15,
    1e16,
    12345678.9,
]
STRINGS = [
    "",
    "plain",
    "<b>&amp;</b>",
    "é ü 日本",
    "tab\there",
    'quote " and \\ slash',
    "line\nbreak",
    "\u2028\u2029",
    "emoji 🎉",
    "ctrl \x01\x1f",
]
MAP_KEYS = ["alpha", "zeta", "a b", "é", 'quo"te', "UPPER", "_under", "dot.ted"]


def spec() -> dict[str, Any]:
    rng = random.Random(20261122)
    floats = EDGE_FLOATS + [
        rng.choice([1, -1]) * rng.random() * 10 ** rng.randint(-12, 25) for _ in range(400)
    ]
    return {
        "Floats": floats,
        "Strings": STRINGS,
        "Ints": [0, -7, 42, 2**62, -(2**63)],
        "MapKeys": MAP_KEYS,
    }


def our_view(data: dict[str, Any]) -> ExpvarEndpoint:
    registry = Registry()
    for index, value in enumerate(data["Floats"]):
        Float(f"float_{index:04d}", registry=registry).set(value)
    for index, text in enumerate(data["Strings"]):
        String(f"string_{index:04d}", registry=registry).set(text)
    for index, number in enumerate(data["Ints"]):
        Int(f"int_{index:04d}", registry=registry).set(number)
    mapping = Map("map", registry=registry)
    for index, key in enumerate(data["MapKeys"]):
        mapping.add(key, index)
    mapping.add_float("float", 1.5)
    nested = Map()
    nested.add("a", 1)
    mapping.set("nested", nested)
    Func("func_floats", lambda: data["Floats"], registry=registry)
    Func("func_map", lambda: {"b": 2, "a": ["x<y&z"], "c": None}, registry=registry)
    return ExpvarEndpoint(registry=registry)


def lines(body: str) -> dict[str, str]:
    assert body.startswith("{\n") and body.endswith("\n}\n")
    out: dict[str, str] = {}
    for line in body[2:-3].split(",\n"):
        key, separator, value = line.partition(": ")
        assert separator, line
        out[json.loads(key)] = value
    return out


@pytest.fixture(scope="module")
def bodies(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("goref")
    binary = build(directory)
    data = spec()
    with serve(binary, data, directory) as url:
        go_body = httpx.get(url + "/debug/vars", timeout=10).text
    return go_body, our_view(data).render().decode()


def test_user_variables_render_byte_for_byte_as_go(bodies: tuple[str, str]) -> None:
    go, ours = (lines(body) for body in bodies)
    user = [key for key in go if key not in ("cmdline", "memstats")]
    assert len(user) > 400
    mismatches = {key: (go[key], ours.get(key)) for key in user if go[key] != ours.get(key)}
    assert mismatches == {}


def test_layout_and_key_order_are_gos(bodies: tuple[str, str]) -> None:
    go_body, our_body = bodies
    go_keys, our_keys = list(lines(go_body)), list(lines(our_body))
    assert go_keys == sorted(go_keys)
    assert our_keys == sorted(our_keys)
    assert set(go_keys) <= set(our_keys)
    assert json.loads(our_body)  # valid JSON, where Go's need not be


def ordered(text: str) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = json.loads(text, object_pairs_hook=list)
    return pairs


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return f"list[{len(value)}]"
    return type(value).__name__


def test_memstats_has_gos_fields_in_gos_order_with_gos_types(bodies: tuple[str, str]) -> None:
    go_text, our_text = lines(bodies[0])["memstats"], lines(bodies[1])["memstats"]
    assert [k for k, _ in ordered(our_text)] == [k for k, _ in ordered(go_text)]
    go, ours = json.loads(go_text), json.loads(our_text)
    assert {k: kind(v) for k, v in ours.items()} == {k: kind(v) for k, v in go.items()}
    integer_fields = [k for k, v in go.items() if isinstance(v, int) and not isinstance(v, bool)]
    assert all(isinstance(ours[k], int) for k in integer_fields), "integers, never 1.0"
    by_size = ordered(our_text)[-1]
    assert by_size[0] == "BySize"
    assert [[key for key, _ in entry] for entry in by_size[1]] == [
        ["Size", "Mallocs", "Frees"]
    ] * 61
    assert [e["Size"] for e in ours["BySize"]] == [e["Size"] for e in go["BySize"]]


def test_memstats_invariants_hold(bodies: tuple[str, str]) -> None:
    stats = json.loads(lines(bodies[1])["memstats"])
    sys_fields = [
        "HeapSys",
        "StackSys",
        "MSpanSys",
        "MCacheSys",
        "BuckHashSys",
        "GCSys",
        "OtherSys",
    ]
    assert stats["Sys"] == sum(stats[f] for f in sys_fields)
    assert stats["HeapSys"] == stats["HeapIdle"] + stats["HeapInuse"]
    assert stats["Alloc"] == stats["HeapAlloc"] > 0
    assert stats["TotalAlloc"] >= stats["Alloc"]
    assert stats["HeapObjects"] == stats["Mallocs"] - stats["Frees"]
    assert 0 <= stats["GCCPUFraction"] <= 1
    assert (stats["Lookups"], stats["NumForcedGC"]) == (0, 0)
    if stats["NumGC"]:
        assert stats["LastGC"] == stats["PauseEnd"][(stats["NumGC"] + 255) % 256]
    if stats["NumGC"] < 256:
        assert stats["PauseTotalNs"] == sum(stats["PauseNs"])
        assert all(v == 0 for v in stats["PauseNs"][stats["NumGC"] :])


def test_served_like_go(tmp_path: Path, bodies: tuple[str, str]) -> None:
    # Content-Type exactly as Go's handler sends it.
    view = our_view(spec())
    status, headers, body = view.respond("GET", "127.0.0.1", {})
    assert status == 200
    assert dict(headers)["content-type"] == "application/json; charset=utf-8"
    assert body.decode().startswith('{\n"cmdline": ')
