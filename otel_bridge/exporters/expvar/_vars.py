"""Exported variables, as Go's `expvar` package has them, plus django-expvar's classes.

    requests = expvar.Int("requests")       # published at construction, like expvar.NewInt
    requests.add(1)
    expvar.Map("cache").add("hits", 1)
    expvar.Func("threads", threading.active_count)

Every var renders itself the way Go's `String()` does. Safe under threads and asyncio (a lock
per var; `Func`s run when `/debug/vars` is read). Publishing a name twice raises, as in Go.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from otel_bridge.exporters.expvar._format import go_float, go_quote, json_value

__all__ = [
    "ExpVar",
    "Float",
    "Func",
    "Int",
    "Map",
    "Registry",
    "String",
    "Var",
    "default_registry",
]


@runtime_checkable
class Var(Protocol):
    """Anything with Go's `String()`: a JSON fragment for its current value."""

    def render(self) -> str: ...


class Int:
    """A 64-bit integer (Go `expvar.Int`)."""

    def __init__(self, name: str | None = None, *, registry: Registry | None = None) -> None:
        self._value = 0
        self._lock = threading.Lock()
        if name is not None:
            (registry if registry is not None else default_registry()).publish(name, self)

    def add(self, delta: int) -> None:
        with self._lock:
            self._value += int(delta)

    def set(self, value: int) -> None:
        with self._lock:
            self._value = int(value)

    def value(self) -> int:
        return self._value

    def render(self) -> str:
        return str(self._value)


class Float:
    """A float64 (Go `expvar.Float`), rendered with Go's `strconv` spelling (`2`, `1e+06`)."""

    def __init__(self, name: str | None = None, *, registry: Registry | None = None) -> None:
        self._value = 0.0
        self._text: str | None = None  # the rendering of _value, until it changes
        self._lock = threading.Lock()
        if name is not None:
            (registry if registry is not None else default_registry()).publish(name, self)

    def add(self, delta: float) -> None:
        with self._lock:
            self._value += float(delta)
            self._text = None

    def set(self, value: float) -> None:
        with self._lock:
            self._value = float(value)
            self._text = None

    def value(self) -> float:
        return self._value

    def render(self) -> str:
        text = self._text
        if text is None:
            text = self._text = go_float(self._value)
        return text


class String:
    """A string (Go `expvar.String`)."""

    def __init__(self, name: str | None = None, *, registry: Registry | None = None) -> None:
        self._value = ""
        if name is not None:
            (registry if registry is not None else default_registry()).publish(name, self)

    def set(self, value: str) -> None:
        self._value = str(value)

    def value(self) -> str:
        return self._value

    def render(self) -> str:
        return json_value(self._value)


class Func:
    """A value computed when `/debug/vars` is read (Go `expvar.Func`); rendered as
    `json.Marshal` would (compact, map keys sorted)."""

    def __init__(
        self,
        name: str | None,
        function: Callable[[], object],
        *,
        registry: Registry | None = None,
    ) -> None:
        self.function = function
        if name is not None:
            (registry if registry is not None else default_registry()).publish(name, self)

    def value(self) -> object:
        return self.function()

    def render(self) -> str:
        return json_value(self.function())


class Map:
    """String-keyed vars (Go `expvar.Map`): `add` creates `Int`/`Float` entries, `set` any var.

    Rendered as Go does: keys sorted, `"key": value` joined by `", "`.
    """

    def __init__(self, name: str | None = None, *, registry: Registry | None = None) -> None:
        self._vars: dict[str, Var] = {}
        self._lock = threading.Lock()
        if name is not None:
            (registry if registry is not None else default_registry()).publish(name, self)

    def get(self, key: str) -> Var | None:
        return self._vars.get(key)

    def set(self, key: str, var: Var) -> None:
        with self._lock:
            self._vars[key] = var

    def add(self, key: str, delta: int) -> None:
        var = self._vars.get(key)
        if var is None:
            with self._lock:
                var = self._vars.setdefault(key, Int())
        if isinstance(var, Int):
            var.add(delta)
        else:
            raise TypeError(f"Map entry {key!r} is not an Int")

    def add_float(self, key: str, delta: float) -> None:
        var = self._vars.get(key)
        if var is None:
            with self._lock:
                var = self._vars.setdefault(key, Float())
        if isinstance(var, Float):
            var.add(delta)
        else:
            raise TypeError(f"Map entry {key!r} is not a Float")

    def delete(self, key: str) -> None:
        with self._lock:
            self._vars.pop(key, None)

    def items(self) -> Iterator[tuple[str, Var]]:
        with self._lock:
            items = sorted(self._vars.items())
        return iter(items)

    def render(self) -> str:
        return "{" + ", ".join(f"{go_quote(k)}: {v.render()}" for k, v in self.items()) + "}"


class ExpVar:
    """django-expvar's variable class: set `name`, implement `value()`.

    Publish an instance with `Registry.publish_class()`. A `value()` that returns a dict is
    merged with other dicts published under the same name (django-expvar's rule).
    """

    name: str = ""

    def get_name(self) -> str:
        if not self.name:
            raise AttributeError(f"{type(self).__name__} has no name")
        return self.name

    def value(self) -> object:
        raise NotImplementedError


class _Merged:
    """Several django-style vars under one name, merged when read."""

    def __init__(self) -> None:
        self.members: list[ExpVar] = []

    def value(self) -> object:
        merged: object = None
        for member in self.members:
            value = member.value()
            if isinstance(value, Mapping) and isinstance(merged, dict):
                merged.update(value)
            elif isinstance(value, Mapping):
                merged = dict(value)
            else:
                merged = value  # as django-expvar: the last scalar wins
        return merged

    def render(self) -> str:
        return json_value(self.value())


# Names `/debug/vars` fills itself (Go reserves cmdline and memstats the same way).
RESERVED = frozenset(
    (
        "cmdline",
        "gc",
        "memstats",
        "otel",
        "otel_bridge",
        "process",
        "requests",
        "requests_this_worker",
        "resource",
        "server",
    )
)


class Registry:
    """Published vars by name; `/debug/vars` renders every one, keys sorted."""

    def __init__(self) -> None:
        self._vars: dict[str, Var] = {}
        self._lock = threading.Lock()
        # (name, "quoted name: ", var) sorted by name, rebuilt when the set of names changes:
        # rendering 1,000 vars must not sort and quote 1,000 names on every read.
        self._sorted: list[tuple[str, str, Var]] | None = None

    def publish(self, name: str, var: Var) -> None:
        """Publish `var` as `name`.

        Raises:
            ValueError: `name` is taken (Go panics with "Reuse of exported var name").
        """
        if not isinstance(var, Var):
            raise TypeError(f"{var!r} has no render(): not an expvar variable")
        with self._lock:
            if name in self._vars or name in RESERVED:
                raise ValueError(f"Reuse of exported var name: {name}")
            self._vars[name] = var
            self._sorted = None

    def publish_class(self, var: ExpVar) -> None:
        """Publish a django-expvar style instance; same names merge (dict values)."""
        name = var.get_name()
        if name in RESERVED:
            raise ValueError(f"Reuse of exported var name: {name}")
        with self._lock:
            existing = self._vars.get(name)
            if existing is None:
                existing = self._vars[name] = _Merged()
                self._sorted = None
            if not isinstance(existing, _Merged):
                raise ValueError(f"Reuse of exported var name: {name}")
            existing.members.append(var)

    def get(self, name: str) -> Var | None:
        return self._vars.get(name)

    def unpublish(self, name: str) -> None:
        """Remove `name` (Go cannot; tests and reloading apps need it)."""
        with self._lock:
            self._vars.pop(name, None)
            self._sorted = None

    def sorted_entries(self) -> list[tuple[str, str, Var]]:
        """(name, `"name": ` as Go quotes it, var), sorted by name."""
        entries = self._sorted
        if entries is None:
            with self._lock:
                entries = [
                    (name, go_quote(name) + ": ", var) for name, var in sorted(self._vars.items())
                ]
                self._sorted = entries
        return entries

    def items(self) -> list[tuple[str, Var]]:
        with self._lock:
            return list(self._vars.items())

    def __len__(self) -> int:
        return len(self._vars)


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """The process's registry (Go's package-level one), created on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Registry()
    return _default
