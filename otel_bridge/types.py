"""Type aliases for the ASGI and WSGI interfaces (PEP 3333, ASGI 3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

Environ: TypeAlias = dict[str, Any]
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
Headers: TypeAlias = list[tuple[str, str]]


class StartResponse(Protocol):
    def __call__(
        self, status: str, headers: Headers, exc_info: ExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


# start_response as Any: type checkers then accept any WSGI callable here, whichever
# StartResponse protocol it was declared with (wsgiref.types', Flask's, Django's…).
WSGIApp: TypeAlias = Callable[[Environ, Any], Iterable[bytes]]

# Tag values accepted by otel_bridge.timer(): scalars, sequences of scalars (multi-valued
# tags) and mappings (flattened to dotted names), as pynba accepted them.
