from __future__ import annotations

import asyncio
import json
import threading

import pytest

from otel_bridge.exporters.expvar import (
    ExpVar,
    ExpvarEndpoint,
    Float,
    Func,
    Int,
    Map,
    Registry,
    String,
)
from otel_bridge.exporters.expvar._format import go_float, json_float, json_value


def test_each_kind_renders_as_go_does() -> None:
    registry = Registry()
    Int("i", registry=registry).add(41)
    registry.get("i").add(1)  # type: ignore[union-attr]
    Float("f", registry=registry).set(1e6)
    String("s", registry=registry).set("<ok>")
    m = Map("m", registry=registry)
    m.add("b", 2)
    m.add_float("a", 0.5)
    Func("fn", lambda: {"z": 1, "a": [1.0, None]}, registry=registry)
    rendered = {name: var.render() for name, var in registry.items()}
    assert rendered == {
        "i": "42",
        "f": "1e+06",
        "s": '"\\u003cok\\u003e"',
        "m": '{"a": 0.5, "b": 2}',
        "fn": '{"a":[1,null],"z":1}',
    }


def test_a_name_is_published_once_and_builtin_names_are_taken() -> None:
    registry = Registry()
    Int("x", registry=registry)
    with pytest.raises(ValueError, match="Reuse of exported var name: x"):
        String("x", registry=registry)
    with pytest.raises(ValueError, match="Reuse of exported var name: memstats"):
        Int("memstats", registry=registry)
    with pytest.raises(TypeError, match="not an expvar variable"):
        registry.publish("y", object())  # type: ignore[arg-type]


def test_map_entries_keep_their_kind() -> None:
    m = Map()
    m.add("n", 1)
    with pytest.raises(TypeError, match="not a Float"):
        m.add_float("n", 1.0)
    m.add_float("x", 1.0)
    with pytest.raises(TypeError, match="not an Int"):
        m.add("x", 1)
    m.delete("x")
    assert m.render() == '{"n": 1}'


def test_counters_are_exact_under_threads_and_tasks() -> None:
    counter, total = Int(), Float()

    def work() -> None:
        for _ in range(10_000):
            counter.add(1)
            total.add(0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def tasks() -> None:
        async def one() -> None:
            for _ in range(1000):
                counter.add(1)
                await asyncio.sleep(0)

        await asyncio.gather(*(one() for _ in range(20)))

    asyncio.run(tasks())
    assert counter.value() == 100_000
    assert total.value() == 40_000.0


def test_django_expvar_classes_merge_dicts_under_one_name() -> None:
    registry = Registry()

    class Generations(ExpVar):
        name = "gc_info"

        def value(self) -> object:
            return {"gen0": 1}

    class Totals(ExpVar):
        name = "gc_info"

        def value(self) -> object:
            return {"collected": 5}

    class Nameless(ExpVar):
        def value(self) -> object:
            return 1

    registry.publish_class(Generations())
    registry.publish_class(Totals())
    assert json.loads(registry.get("gc_info").render()) == {  # type: ignore[union-attr]
        "gen0": 1,
        "collected": 5,
    }
    with pytest.raises(AttributeError, match="Nameless has no name"):
        registry.publish_class(Nameless())


def test_a_failing_variable_shows_an_error_marker_and_the_endpoint_still_answers() -> None:
    registry = Registry()
    Int("fine", registry=registry).set(1)

    def broken() -> object:
        raise KeyError("gone")

    Func("broken", broken, registry=registry)
    view = ExpvarEndpoint(registry=registry)
    status, _, body = view.respond("GET", "127.0.0.1", {})
    document = json.loads(body)
    assert status == 200
    assert document["fine"] == 1
    assert document["broken"] == {"error": "KeyError: 'gone'"}
    assert view.health.errors["expvar.var.broken"] == 1


def test_non_finite_and_odd_values_never_break_the_json() -> None:
    assert json_value([float("nan"), float("inf"), b"x", {1: 2}]) == '[null,null,"b\'x\'",{"1":2}]'
    assert go_float(float("nan")) == json_float(float("-inf")) == "null"


def test_process_figures_cheap_by_default_costly_when_asked() -> None:
    basic = json.loads(ExpvarEndpoint(registry=Registry()).render())["process"]
    full = json.loads(ExpvarEndpoint(registry=Registry(), full_process=True).render())["process"]
    assert basic["threads"] >= 1 and basic["fds"] > 0
    assert "psutil" not in basic
    assert set(full["psutil"]) == {"cpu", "vmem", "swap", "netio", "memory_full_info"}
    assert full["psutil"]["memory_full_info"]["uss"] > 0
    assert full["psutil"]["vmem"]["total"] > 0
