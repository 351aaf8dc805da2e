"""Small, allocation-light helpers shared by the ASGI and WSGI wrappers (stable HTTP semconv)."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["normalize_method", "sanitize_text", "split_host"]

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
