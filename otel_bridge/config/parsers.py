"""How each kind of setting is read: one parser per form (a boolean, a CIDR list, a URL …),
each raising `ConfigError` that names the variable, the value and the form expected."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote, urlsplit

from otel_bridge.errors import ConfigError

__all__ = ["MAX_PINBA_ENDPOINTS", "VIEW_NAMES", "Variable", "public_url_problem"]

# The four views, in the order the docs list them; all on by default.
VIEW_NAMES = ("expvar", "pinba", "wide_events", "cronitor")

T = TypeVar("T")


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: its name, how to parse it, and its documentation."""

    env: str
    attr: str
    parse: Callable[[str, str], T]
    default: T
    kind: str
    example: str
    doc: str
    # A value the variable refuses, shown in the docs with the error it gets.
    bad: str | None = None
    # How the docs spell the default, when str() of the parsed value would not do.
    default_text: str | None = None


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ConfigError(name, raw, "true or false")


def _int_range(low: int, high: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, f"an integer from {low} to {high}") from None
        if not low <= value <= high:
            raise ConfigError(name, raw, f"an integer from {low} to {high}")
        return value

    return parse


def _str(name: str, raw: str) -> str | None:
    value = raw.strip()
    return value or None


def _names(allowed: tuple[str, ...]) -> Callable[[str, str], tuple[str, ...]]:
    def parse(name: str, raw: str) -> tuple[str, ...]:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if items == ["none"]:
            return ()
        unknown = [item for item in items if item not in allowed]
        if unknown:
            expected = ", ".join(allowed) if allowed else "none"
            raise ConfigError(name, raw, f"a comma-separated list of: {expected} (or 'none')")
        return tuple(dict.fromkeys(items))

    return parse


def _views(name: str, raw: str) -> tuple[str, ...]:
    return _names(VIEW_NAMES)(name, raw)


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ConfigError(name, raw, " or ".join(choices))
        return value

    return parse


MAX_PINBA_ENDPOINTS = 8


def _endpoints(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    # As php-pinba's pinba.server: host:port or [v6]:port, comma or space separated, up to 8.
    expected = "host:port or [ipv6]:port, comma-separated, at most 8"
    items = [item for item in re.split(r"[,\s]+", raw.strip()) if item]
    if not items or len(items) > MAX_PINBA_ENDPOINTS:
        raise ConfigError(name, raw, expected)
    endpoints: list[tuple[str, int]] = []
    for item in items:
        match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", item)
        if match is None:
            raise ConfigError(name, raw, expected)
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if not 1 <= port <= 65535:
            raise ConfigError(name, raw, expected)
        endpoints.append((host, port))
    return tuple(endpoints)


def _listen(name: str, raw: str) -> tuple[str, int]:
    # One address to bind: host:port or [v6]:port; port 0 lets the kernel choose.
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", raw.strip())
    port = int(match.group(2) or match.group(4)) if match is not None else -1
    if match is None or port > 65535:
        raise ConfigError(name, raw, "host:port or [ipv6]:port to listen on")
    return (match.group(1) or match.group(3), port)


def _path(name: str, raw: str) -> str:
    value = raw.strip()
    if not value.startswith("/") or any(ch in value for ch in "?# \t"):
        raise ConfigError(name, raw, "a URL path starting with /")
    return value


def _networks(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in re.split(r"[,\s]+", raw) if item.strip())
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ConfigError(
                name, raw, "comma-separated IP networks (CIDR), e.g. 10.0.0.0/8,::1/128"
            ) from None
    return items


def _proxies(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in re.split(r"[,\s]+", raw) if item.strip())
    try:
        return tuple(item for item in items if item == "unix") + _networks(
            name, ",".join(item for item in items if item != "unix")
        )
    except ConfigError:
        raise ConfigError(
            name, raw, "comma-separated IP networks (CIDR) and/or `unix`, e.g. 127.0.0.1/32,unix"
        ) from None


def _token(name: str, raw: str) -> str:
    value = raw.strip()
    if len(value) < 16 or any(ch.isspace() for ch in value):
        raise ConfigError(name, "<hidden>", "a token of at least 16 characters, no spaces")
    return value


def _sink(name: str, raw: str) -> str:
    value = raw.strip()
    if value in ("stdout", "stderr", "otlp", "logging"):
        return value
    if value.startswith("file:") and len(value) > 5:
        return value
    if value.startswith("logging:") and re.fullmatch(r"[\w.]+", value[8:]):
        return value
    raise ConfigError(name, raw, "stdout, stderr, file:PATH, logging[:LOGGER] or otlp")


def _float_range(low: float, high: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, f"a number from {low:g} to {high:g}") from None
        if not low <= value <= high:
            raise ConfigError(name, raw, f"a number from {low:g} to {high:g}")
        return value

    return parse


def _words(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    for item in items:
        if not re.fullmatch(r"[\w.\-\[\]]+", item):
            raise ConfigError(name, raw, "comma-separated parameter names")
    return items


_HOST_PATTERN = re.compile(r"\*|\.?[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\]")


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    # Django's ALLOWED_HOSTS syntax: a name, `.example.com` for it and its subdomains, `*`.
    items = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    for item in items:
        if not _HOST_PATTERN.fullmatch(item):
            raise ConfigError(
                name, raw, "comma-separated host names, .domain for its subdomains too, or *"
            )
    return items


def _choice_any_header(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if not re.fullmatch(r"[a-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ConfigError(name, raw, "an HTTP header name")
    return value


def _http_url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ConfigError(name, raw, "an absolute http(s) URL")
    return value


def public_url_problem(url: str) -> str | None:
    """Why Cronitor could not probe `url` (relative, wildcard, loopback, unspecified or
    link-local host), or None when it is a base URL it can."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return f"{url!r}: an absolute http(s) URL, e.g. https://shop.example.com"
    if "*" in host or host.startswith(".") or host in ("localhost", "localhost.localdomain"):
        return f"{url!r}: Cronitor probes from the internet; {host} is not a host"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None  # a name
    if address is not None and (
        address.is_loopback or address.is_unspecified or address.is_link_local
    ):
        return f"{url!r}: Cronitor cannot reach {host}"
    return None


def _public_url(name: str, raw: str) -> str:
    value = raw.strip()
    problem = public_url_problem(value)
    if problem is not None:
        raise ConfigError(name, raw, f"the public URL Cronitor probes ({problem})")
    return value.rstrip("/")


def _secret(name: str, raw: str) -> str:
    value = raw.strip()
    if any(ch.isspace() for ch in value):
        raise ConfigError(name, "<hidden>", "a key without spaces")
    return value


def _exporter_names(name: str, raw: str) -> tuple[str, ...]:
    # OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: entry-point names, checked when the
    # provider is built (the installed packages decide which names exist).
    items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if "none" in items:
        if len(items) > 1:
            raise ConfigError(name, raw, "'none' alone, or a comma-separated list of exporters")
        return ()
    for item in items:
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", item):
            raise ConfigError(name, raw, "a comma-separated list of exporter names")
    return items


def _resource_attributes(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    # W3C-baggage-like list, as the OTel SDK reads it: key=value pairs, values percent-encoded.
    pairs: dict[str, str] = {}
    for item in raw.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(name, raw, "comma-separated key=value pairs")
        pairs[key.strip()] = unquote(value.strip())
    return tuple(pairs.items())


def _regex_list(name: str, raw: str) -> tuple[str, ...]:
    patterns = tuple(item.strip() for item in raw.split(",") if item.strip())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                name, raw, f"comma-separated regular expressions ({pattern!r}: {exc})"
            ) from None
    return patterns
