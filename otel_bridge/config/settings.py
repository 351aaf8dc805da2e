"""`Settings`: the validated configuration, read from the environment once at startup."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from otel_bridge.config.parsers import VIEW_NAMES, Variable
from otel_bridge.config.variables import VARIABLES
from otel_bridge.errors import ConfigError

__all__ = ["Settings", "variables_table"]

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
    exporters: tuple[str, ...] = VIEW_NAMES
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
    timer_cpu: bool = False
    pure_python: bool = False
    unrouted: str = "status"
    allowed_hosts: tuple[str, ...] = ()
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
    """The configuration table of docs/configuration.md, generated from `VARIABLES` (a test
    keeps them equal)."""
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
