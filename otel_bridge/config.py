"""Every configuration variable, parsed and validated in one place.

`Settings.from_env()` is the only code in otel_bridge that reads the environment. It runs at
startup (inside `instrument()`), never at import and never per request, and it never writes to
the environment. An invalid value raises `ConfigError` naming the variable, the value and the
expected form.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from otel_bridge.errors import ConfigError

__all__ = ["VARIABLES", "VIEW_NAMES", "Settings", "Variable"]

# The four views, in the order the README lists them; all on by default.
VIEW_NAMES = ("expvar", "pinba", "wide_events", "cronitor")
AVAILABLE_VIEWS: tuple[str, ...] = VIEW_NAMES
DEFAULT_VIEWS: tuple[str, ...] = AVAILABLE_VIEWS

T = TypeVar("T")

# Query parameters whose values wide events never show (OTEL_EXPORTER_WIDE_EVENTS_REDACT_PARAMS).


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
    # A value the variable refuses, shown in the README with the error it gets.
    bad: str | None = None
    # How the README spells the default, when str() of the parsed value would not do.
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


def _public_url(name: str, raw: str) -> str:
    from otel_bridge.exporters.cronitor._derive import check_public_url
    from otel_bridge.exporters.cronitor._spec import HealthcheckError

    try:
        return check_public_url(raw.strip())
    except HealthcheckError as exc:
        raise ConfigError(name, raw, f"the public URL Cronitor probes ({exc})") from None


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


VARIABLES: tuple[Variable[Any], ...] = (
    Variable(
        "OTEL_SDK_DISABLED",
        "sdk_disabled",
        _bool,
        False,
        "bool",
        "true",
        "Turn otel_bridge off: `instrument()` returns the app unchanged.",
        bad="maybe",
    ),
    Variable(
        "OTEL_SERVICE_NAME",
        "service_name",
        _str,
        None,
        "str",
        "shop",
        "`service.name` of the resource; wins over the one in `OTEL_RESOURCE_ATTRIBUTES`.",
    ),
    Variable(
        "OTEL_RESOURCE_ATTRIBUTES",
        "resource_attributes",
        _resource_attributes,
        (),
        "key=value list",
        "deployment.environment=prod,team=web",
        "Resource attributes for the providers otel_bridge creates (values percent-decoded).",
        bad="team",
    ),
    Variable(
        "OTEL_PYTHON_EXCLUDED_URLS",
        "excluded_urls",
        _regex_list,
        (),
        "regex list",
        "healthz,^/static/",
        "Requests whose path matches one of these regular expressions (`re.search`) are "
        "passed through unrecorded.",
        bad="(unclosed",
    ),
    Variable(
        "OTEL_TRACES_EXPORTER",
        "traces_exporters",
        _exporter_names,
        (),
        "name list",
        "otlp",
        "Span exporters (entry points of `opentelemetry_traces_exporter`) for the tracer "
        "provider otel_bridge creates when the process has none; `none` by default.",
        bad="none,otlp",
    ),
    Variable(
        "OTEL_METRICS_EXPORTER",
        "metrics_exporters",
        _exporter_names,
        (),
        "name list",
        "otlp",
        "Metric exporters (entry points of `opentelemetry_metrics_exporter`) for the meter "
        "provider otel_bridge creates when the process has none; `none` by default.",
        bad="ot lp",
    ),
    Variable(
        "OTEL_BRIDGE_EXPORTERS",
        "exporters",
        _views,
        DEFAULT_VIEWS,
        "name list",
        "expvar,pinba",
        "Which views are on: any of `expvar`, `pinba`, `wide_events`, `cronitor`, or `none`.",
        bad="statsd",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_PATH",
        "expvar_path",
        _path,
        "/debug/vars",
        "path",
        "/internal/vars",
        "Where the expvar JSON is served (exact path, any method, query ignored, as Go).",
        bad="debug/vars",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_LISTEN",
        "expvar_listen",
        _listen,
        ("127.0.0.1", 6060),
        "host:port",
        "127.0.0.1:9100",
        "Zero-code mode only (`OTEL_METRICS_EXPORTER=expvar` under `opentelemetry-instrument`, "
        "where no wrapper serves the app): the address of the expvar view's own listener "
        "(Go's debug-server convention, :6060). The access rules below apply.",
        bad="6060",
        default_text="127.0.0.1:6060",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_ALLOW",
        "expvar_allow",
        _networks,
        (),
        "CIDR list",
        "10.0.0.0/8,192.168.1.7",
        "Networks whose clients may read it; by default loopback only (any client, when a "
        "token is set and this is not). A unix-socket peer counts as loopback.",
        bad="10.0.0.0/33",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_TOKEN",
        "expvar_token",
        _token,
        None,
        "str",
        "s3cret-s3cret-s3cret",
        "Bearer token required in `Authorization: Bearer …` (compared in constant time).",
        bad="short",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_TRUSTED_PROXIES",
        "expvar_trusted_proxies",
        _proxies,
        (),
        "CIDR list, `unix`",
        "127.0.0.1/32,unix",
        "Proxies that only pass requests on (`unix`: a Unix-socket peer). The client they "
        "forward for (`Forwarded`, `X-Forwarded-For` or `X-Real-IP`) is checked instead of "
        "them; without this, any forwarded request is checked as the client it names, and "
        "refused if it names nobody.",
        bad="proxy.local",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_REDACT",
        "expvar_redact",
        _regex_list,
        (),
        "regex list",
        "--dsn=\\S+",
        "More patterns removed from `cmdline` (passwords, tokens, keys and URL credentials "
        "are always removed).",
        bad="(",
    ),
    Variable(
        "OTEL_EXPORTER_EXPVAR_PROCESS",
        "expvar_process",
        _choice("basic", "full"),
        "basic",
        "basic or full",
        "full",
        "`full` adds psutil's figures to `process`: system CPU, memory, swap, network (as "
        "django-expvar-psutil) and memory_full_info; they cost ~0.3 ms per read.",
        bad="everything",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_SINK",
        "wide_events_sink",
        _sink,
        "stdout",
        "sink",
        "file:/var/log/app/events.jsonl",
        "Where wide events go: `stdout`, `stderr`, `file:PATH`, `logging[:LOGGER]` (a log "
        "record per event, the event in `extra['wide_event']`) or `otlp` (OTel log records).",
        bad="kafka",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_TIMEOUT",
        "wide_events_timeout",
        _float_range(0, 86_400),
        None,
        "float (s)",
        "25",
        "A request still running after this many seconds gets a `timeout` event (written by "
        "a watchdog thread, with its stack and open spans); 0 turns it off. Under gunicorn "
        "with otel_bridge's hooks, the default is gunicorn's `--timeout` minus a margin.",
        bad="soon",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_FORMAT",
        "wide_events_format",
        _choice("json", "logfmt"),
        "json",
        "json or logfmt",
        "logfmt",
        "JSON Lines or logfmt.",
        bad="xml",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_SAMPLE_RATE",
        "wide_events_sample_rate",
        _int_range(1, 1_000_000),
        1,
        "int",
        "20",
        "Keep 1 in N ordinary requests, chosen by request id; errors, 5xx and slow requests "
        "are always kept. Sampled events carry `sample_rate`.",
        bad="0",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_SLOW_MS",
        "wide_events_slow_ms",
        _float_range(0, 3_600_000),
        1000.0,
        "float (ms)",
        "500",
        "Requests at least this slow are always kept.",
        bad="-1",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_REQUEST_ID_HEADER",
        "wide_events_request_id_header",
        _choice_any_header,
        "x-request-id",
        "header name",
        "x-amzn-trace-id",
        "Request header whose value is `request.id` (else the trace id).",
        bad="x request id",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_REDACT_PARAMS",
        "wide_events_redact_params",
        _words,
        (),
        "name list",
        "otp,state",
        "More query and matrix parameters whose values are replaced by REDACTED. A name "
        "holding a secret word (token, secret, password, key, signature, auth, session, jwt, "
        "credential, cookie, …) and `code` always are.",
        bad="a b",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_TRUST_FORWARDED_FOR",
        "wide_events_trust_forwarded_for",
        _bool,
        False,
        "bool",
        "true",
        "Take `client.address` from `X-Forwarded-For` (only behind a proxy that sets it).",
        bad="perhaps",
    ),
    Variable(
        "OTEL_EXPORTER_WIDE_EVENTS_USER_ID",
        "wide_events_user_id",
        _bool,
        True,
        "bool",
        "false",
        "Django: the signed-in user's primary key as `user.id` — only when the request "
        "already loaded the user (never an extra query).",
        bad="maybe",
    ),
    Variable(
        "CRONITOR_API_KEY",
        "cronitor_api_key",
        _secret,
        None,
        "str",
        "(your key)",
        "Cronitor API key with `monitor:write` (the cronitor SDK's own variable).",
        bad="two words",
    ),
    Variable(
        "CRONITOR_API_VERSION",
        "cronitor_api_version",
        _str,
        None,
        "str",
        "2025-11-28",
        "Sent as `Cronitor-Version` when set (else the account's default applies).",
    ),
    Variable(
        "CRONITOR_ENVIRONMENT",
        "cronitor_environment",
        _str,
        "production",
        "str",
        "staging",
        "Outside `production`, monitor keys get the environment as suffix and "
        "`environments: [...]`.",
    ),
    Variable(
        "OTEL_EXPORTER_CRONITOR_PUBLIC_URL",
        "cronitor_public_url",
        _public_url,
        None,
        "URL",
        "https://shop.example.com",
        "The base URL Cronitor probes (never a Host header, a wildcard or loopback).",
        bad="http://127.0.0.1:8000",
    ),
    Variable(
        "OTEL_EXPORTER_CRONITOR_ENDPOINT",
        "cronitor_endpoint",
        _http_url,
        "https://cronitor.io/api",
        "URL",
        "https://cronitor.io/api",
        "Cronitor's API base (monitors are PUT to `<endpoint>/monitors`).",
        bad="cronitor.io",
    ),
    Variable(
        "OTEL_EXPORTER_CRONITOR_TIMEOUT",
        "cronitor_timeout",
        _float_range(1, 600),
        20.0,
        "float (s)",
        "10",
        "Total time a sync may take, retries included.",
        bad="0",
    ),
    Variable(
        "OTEL_EXPORTER_CRONITOR_SYNC_ON_STARTUP",
        "cronitor_sync_on_startup",
        _bool,
        False,
        "bool",
        "true",
        "Also sync when the app starts: one process per server, in the background (the CLI "
        "`otel-bridge healthchecks sync` in a release step is the usual way).",
        bad="maybe",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_ENDPOINT",
        "pinba_endpoint",
        _endpoints,
        (("127.0.0.1", 30002),),
        "host:port list",
        "pinba.internal:30002",
        "Pinba collectors to send every request's datagram to (up to 8, as php-pinba's "
        "`pinba.server`).",
        bad="pinba.internal",
        default_text="127.0.0.1:30002",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_SCRIPT_NAME",
        "pinba_script_name",
        _choice("route", "path"),
        "route",
        "route or path",
        "path",
        "What `script_name` holds: the route template (bounded cardinality; requests no route "
        "matched are `<unmatched>` when 404, else their path) or the raw path.",
        bad="url",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_SERVER_NAME",
        "pinba_server_name",
        _str,
        None,
        "str",
        "shop.example.com",
        "`server_name` of every packet; by default the request's `Host`.",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_HOSTNAME",
        "pinba_hostname",
        _str,
        None,
        "str",
        "web-1",
        "`hostname` of every packet; by default the machine's host name.",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_TAGS",
        "pinba_tags",
        _resource_attributes,
        (),
        "key=value list",
        "env=prod,dc=par1",
        "Request tags added to every packet (besides those set with `otel_bridge.tag()`).",
        bad="env",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_MAX_PACKET_SIZE",
        "pinba_max_packet_size",
        _int_range(512, 65507),
        65507,
        "int",
        "1472",
        "Largest datagram sent, in bytes; a larger packet loses its smallest timers "
        "(counted in `bridge.dropped.pinba.timers_trimmed`) instead of being lost whole.",
        bad="100000",
    ),
    Variable(
        "OTEL_EXPORTER_PINBA_RESOLVE_INTERVAL",
        "pinba_resolve_interval",
        _int_range(1, 86400),
        60,
        "int (s)",
        "300",
        "How often collector host names are resolved again, on the exporter thread.",
        bad="0",
    ),
    Variable(
        "OTEL_BRIDGE_BODY_SIZE_METRICS",
        "body_size_metrics",
        _bool,
        False,
        "bool",
        "true",
        "Also record `http.server.request.body.size` / `http.server.response.body.size` "
        "(opt-in metrics of the HTTP semantic conventions).",
        bad="sometimes",
    ),
    Variable(
        "OTEL_BRIDGE_QUEUE_SIZE",
        "queue_size",
        _int_range(1, 1_000_000),
        4096,
        "int",
        "8192",
        "Finished requests waiting for the background exporter thread. When it is full a "
        "request waits up to 50 ms for room (the thread needs the GIL the requests hold); "
        "if none comes, the record is dropped and counted (`bridge.dropped.queue_full`) and "
        "requests stop waiting for 1 s.",
        bad="0",
    ),
    Variable(
        "OTEL_BRIDGE_MAX_TIMERS",
        "max_timers",
        _int_range(0, 100_000),
        512,
        "int",
        "1000",
        "Timers (child spans) kept per request; further ones are counted in the record's "
        "`timers_dropped`.",
        bad="-1",
    ),
)

_BY_ATTR = {variable.attr: variable for variable in VARIABLES}


@dataclass(frozen=True)
class Settings:
    """Validated configuration of otel_bridge.

    Build it with `Settings.from_env()`; keyword arguments to `instrument()` override single
    fields through `Settings.replace()`.
    """

    sdk_disabled: bool = False
    service_name: str | None = None
    resource_attributes: tuple[tuple[str, str], ...] = ()
    excluded_urls: tuple[str, ...] = ()
    traces_exporters: tuple[str, ...] = ()
    metrics_exporters: tuple[str, ...] = ()
    exporters: tuple[str, ...] = DEFAULT_VIEWS
    wide_events_sink: str = "stdout"
    wide_events_format: str = "json"
    wide_events_timeout: float | None = None
    wide_events_sample_rate: int = 1
    wide_events_slow_ms: float = 1000.0
    wide_events_request_id_header: str = "x-request-id"
    wide_events_redact_params: tuple[str, ...] = ()
    wide_events_trust_forwarded_for: bool = False
    wide_events_user_id: bool = True
    expvar_path: str = "/debug/vars"
    expvar_listen: tuple[str, int] = ("127.0.0.1", 6060)
    expvar_allow: tuple[str, ...] = ()
    expvar_token: str | None = field(default=None, repr=False)
    expvar_trusted_proxies: tuple[str, ...] = ()
    expvar_redact: tuple[str, ...] = ()
    expvar_process: str = "basic"
    cronitor_api_key: str | None = field(default=None, repr=False)
    cronitor_api_version: str | None = None
    cronitor_environment: str = "production"
    cronitor_public_url: str | None = None
    cronitor_endpoint: str = "https://cronitor.io/api"
    cronitor_timeout: float = 20.0
    cronitor_sync_on_startup: bool = False
    pinba_endpoint: tuple[tuple[str, int], ...] = (("127.0.0.1", 30002),)
    pinba_script_name: str = "route"
    pinba_server_name: str | None = None
    pinba_hostname: str | None = None
    pinba_tags: tuple[tuple[str, str], ...] = ()
    pinba_max_packet_size: int = 65507
    pinba_resolve_interval: int = 60
    body_size_metrics: bool = False
    queue_size: int = 4096
    max_timers: int = 512
    # Compiled once from excluded_urls; not a variable of its own.
    excluded_regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.excluded_urls and self.excluded_regex is None:
            pattern = re.compile("|".join(f"(?:{item})" for item in self.excluded_urls))
            object.__setattr__(self, "excluded_regex", pattern)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every variable of `VARIABLES` from `environ` (default: `os.environ`).

        Raises:
            ConfigError: a variable holds a value outside its documented form.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for variable in VARIABLES:
            raw = env.get(variable.env)
            if raw is not None and raw.strip() != "":
                values[variable.attr] = variable.parse(variable.env, raw)
        return cls(**values)

    def replace(self, **overrides: Any) -> Settings:
        """Return a copy with the given fields replaced; a value of None leaves a field as is.

        Values may be given parsed (a tuple of view names) or as the environment would spell
        them (a comma-separated string); either way they are validated like the variable.

        Raises:
            ConfigError: an override has an invalid value (the message names the keyword).
        """
        changes: dict[str, Any] = {}
        for attr, value in overrides.items():
            variable = _BY_ATTR.get(attr)
            if variable is None:
                raise TypeError(f"unknown setting {attr!r}")
            if value is None:
                continue
            changes[attr] = _coerce(variable, attr, value)
        if "excluded_urls" in changes:
            changes["excluded_regex"] = None
        return dataclasses.replace(self, **changes)


def _coerce(variable: Variable[Any], attr: str, value: object) -> Any:
    if isinstance(value, str):
        return variable.parse(attr, value)
    if isinstance(value, bool) or isinstance(variable.default, bool):
        if not isinstance(value, bool):
            raise ConfigError(attr, value, "True or False")
        return value
    if isinstance(value, float) and not isinstance(variable.default, int):
        try:
            return variable.parse(attr, repr(value))
        except ConfigError as exc:
            raise ConfigError(attr, value, exc.expected) from None
    if isinstance(variable.default, int) and not isinstance(variable.default, float):
        if not isinstance(value, int):
            raise ConfigError(attr, value, "an integer")
        try:
            return variable.parse(attr, str(value))
        except ConfigError as exc:
            raise ConfigError(attr, value, exc.expected) from None
    if isinstance(value, Mapping) and attr in ("resource_attributes", "pinba_tags"):
        return tuple((str(key), str(val)) for key, val in value.items())
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = [str(item) for item in value]
        if attr == "excluded_urls":
            # Regular expressions may hold commas ("a{1,3}"): validate each one as given.
            for item in items:
                try:
                    re.compile(item)
                except re.error as exc:
                    raise ConfigError(attr, item, f"a regular expression ({exc})") from None
            return tuple(items)
        return variable.parse(attr, ",".join(items))
    raise ConfigError(attr, value, variable.kind)


def variables_table() -> str:
    """The README's configuration table, generated from `VARIABLES` (a test keeps them equal)."""
    rows = [
        "| variable | type | default | example | meaning | on a bad value |",
        "|---|---|---|---|---|---|",
    ]
    for variable in VARIABLES:
        default = variable.default
        if variable.default_text is not None:
            shown = variable.default_text
        elif isinstance(default, bool):
            shown = "false" if default is False else "true"
        elif isinstance(default, tuple):
            shown = ",".join(str(item) for item in default) or "(none)"
        elif default is None:
            shown = "(unset)"
        else:
            shown = str(default)
        error = "—"
        if variable.bad is not None:
            try:
                variable.parse(variable.env, variable.bad)
            except ConfigError as exc:
                error = f"`{exc}`"
        rows.append(
            f"| `{variable.env}` | {variable.kind} | `{shown}` | `{variable.example}` "
            f"| {variable.doc} | {error} |"
        )
    return "\n".join(rows)
