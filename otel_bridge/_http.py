"""Small, allocation-light helpers shared by the ASGI and WSGI wrappers (stable HTTP semconv)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

__all__ = ["ASGIHeaders", "WSGIHeaders", "normalize_method", "sanitize_text", "split_host"]

# The methods of RFC 9110 + PATCH (RFC 5789), as the HTTP semantic conventions list them;
# anything else is recorded as "_OTHER" with the original in http.request.method_original.
KNOWN_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
)


def normalize_method(method: str) -> str:
    if method in KNOWN_METHODS:
        return method
    return "_OTHER"


@lru_cache(maxsize=256)
def split_host(host: str) -> tuple[str, int | None]:
    """``"example.com:8080"`` → ``("example.com", 8080)``; ``"[::1]:80"`` → ``("::1", 80)``."""
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            address = host[1:end]
            rest = host[end + 1 :]
            port = _port(rest[1:]) if rest.startswith(":") else None
            return address, port
        return host, None
    address, sep, port_text = host.rpartition(":")
    if not sep or ":" in address:
        # No port, or a bare IPv6 address without brackets.
        return host, None
    port = _port(port_text)
    if port is None:
        return host, None
    return address, port


def _port(text: str) -> int | None:
    if text.isdigit() and len(text) <= 5:
        value = int(text)
        if value <= 65535:
            return value
    return None


def sanitize_text(text: str) -> str:
    """Make `text` encodable as UTF-8 (lone surrogates from undecodable bytes become U+FFFD)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)
    return text


class _LazyHeaders(Mapping[str, str]):
    """Headers decoded on first full read; `get()` of one name may look it up directly."""

    __slots__ = ("_decoded",)

    def __init__(self) -> None:
        self._decoded: dict[str, str] | None = None

    def _decode(self) -> dict[str, str]:
        raise NotImplementedError

    def _all(self) -> dict[str, str]:
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = self._decode()
        return decoded

    def __getitem__(self, key: str) -> str:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


# Per header name asked for (the views ask for a handful), bounded: the name as ASGI spells
# it, and the WSGI environ key.
_NAME_CACHE_SIZE = 256
_WANTED: dict[str, bytes] = {}
_ENVIRON_NAMES: dict[str, str] = {}


class ASGIHeaders(_LazyHeaders):
    """Request headers of an ASGI scope, decoded (latin-1, lower-case names) only when read.

    Repeated headers are joined with ",". A single `get()` scans without decoding the rest, so
    a view that reads one header pays for one header.
    """

    __slots__ = ("_raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        super().__init__()
        self._raw = raw

    def _decode(self) -> dict[str, str]:
        decoded: dict[str, str] = {}
        for name, value in self._raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            decoded[key] = f"{decoded[key]},{text}" if key in decoded else text
        return decoded

    def get(self, key: str, default: Any = None) -> Any:
        if self._decoded is not None:
            return self._decoded.get(key, default)
        wanted = _WANTED.get(key)
        if wanted is None:
            wanted = key.lower().encode("latin-1", "replace")
            if len(_WANTED) < _NAME_CACHE_SIZE:
                _WANTED[key] = wanted
        found: bytes | None = None
        for name, value in self._raw:
            if name == wanted or name.lower() == wanted:
                found = value if found is None else found + b"," + value
        return default if found is None else found.decode("latin-1")


class WSGIHeaders(_LazyHeaders):
    """Request headers of a WSGI environ (``HTTP_*``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``)."""

    __slots__ = ("_environ",)

    def __init__(self, environ: Mapping[str, Any]) -> None:
        super().__init__()
        self._environ = environ

    def _decode(self) -> dict[str, str]:
        decoded: dict[str, str] = {}
        for key, value in list(self._environ.items()):
            if key.startswith("HTTP_"):
                decoded[key[5:].lower().replace("_", "-")] = str(value)
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                decoded[key.lower().replace("_", "-")] = str(value)
        return decoded

    def get(self, key: str, default: Any = None) -> Any:
        if self._decoded is not None:
            return self._decoded.get(key, default)
        name = _ENVIRON_NAMES.get(key)
        if name is None:
            name = key.upper().replace("-", "_")
            if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                name = "HTTP_" + name
            if len(_ENVIRON_NAMES) < _NAME_CACHE_SIZE:
                _ENVIRON_NAMES[key] = name
        value = self._environ.get(name)
        if name[0] == "C":  # CONTENT_TYPE, CONTENT_LENGTH: empty means absent
            return str(value) if value else default
        return default if value is None else str(value)
