"""What a route's healthcheck declares, validated against Cronitor's `check` monitor schema.

Facts: research/cronitor.md (§2 the check monitor, §3 the assertion grammar). An invalid
declaration raises `HealthcheckError` where it is declared (or, for the parts only known when
monitors are derived, naming the route).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Healthcheck", "HealthcheckError", "interval", "validate_assertion"]

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH")
WITH_BODY = ("POST", "PUT", "PATCH")
DEFAULT_ASSERTIONS = ("response.code = 200", "response.time < 2s")

_ORDER = ("<", "<=", ">=", ">")
_SUBJECTS: dict[str, tuple[tuple[str, ...], bool]] = {
    # subject: (operators, takes a key)
    "response.time": (_ORDER, False),
    "response.code": (("=", "!=", *_ORDER), False),
    "response.body": (("contains", "!contains", "=", "!="), False),
    "response.json": (("contains", "!contains", "=", "!=", *_ORDER), True),
    "response.header": (("contains", "!contains", "=", "!=", *_ORDER), True),
    "resource.last_modified": (("=", "!=", *_ORDER), False),
    "resource.item_count": (("=", "!=", *_ORDER), False),
    "resource.public": (("=",), False),
    "ssl_certificate.expires_in": (("=", *_ORDER), False),
}
_INTERVAL = re.compile(r"every\s+(\d+)\s+(seconds?|secs?|minutes?|mins?|hours?)", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class HealthcheckError(ValueError):
    """A healthcheck declaration Cronitor would refuse; the message says what and where."""


def interval(schedule: int | str) -> str:
    """A check's schedule as Cronitor writes it; 30 s to 1 h.

    Raises:
        HealthcheckError: not an interval in that range.
    """
    if isinstance(schedule, bool):
        raise HealthcheckError(f"schedule={schedule!r}: expected seconds or 'every N minutes'")
    if isinstance(schedule, int):
        seconds = schedule
    else:
        match = _INTERVAL.fullmatch(schedule.strip())
        if match is None:
            raise HealthcheckError(
                f"schedule={schedule!r}: a check runs on an interval, e.g. 'every 60 seconds'"
            )
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()]
    if not 30 <= seconds <= 3600:
        raise HealthcheckError(f"schedule={schedule!r}: checks run every 30 seconds to 1 hour")
    if seconds % 60 == 0 and seconds >= 120:
        return f"every {seconds // 60} minutes"
    return f"every {seconds} seconds"


def validate_assertion(assertion: str) -> str:
    """One assertion in Cronitor's grammar (`subject [key] operator value`).

    Raises:
        HealthcheckError: unknown subject or operator, `==` instead of `=`, missing value.
    """
    text = assertion.strip()
    parts = text.split(None, 1)
    subject = parts[0] if parts else ""
    if subject not in _SUBJECTS:
        known = ", ".join(_SUBJECTS)
        raise HealthcheckError(f"assertion {assertion!r}: unknown subject (one of {known})")
    operators, keyed = _SUBJECTS[subject]
    rest = parts[1] if len(parts) > 1 else ""
    if keyed:
        key, _, rest = rest.partition(" ")
        if not key:
            raise HealthcheckError(f"assertion {assertion!r}: {subject} takes a key first")
    operator, _, value = rest.strip().partition(" ")
    if operator == "==":
        raise HealthcheckError(
            f"assertion {assertion!r}: Cronitor writes equality as '=', not '=='"
        )
    if operator not in operators:
        raise HealthcheckError(
            f"assertion {assertion!r}: {subject} takes one of {' '.join(operators)}"
        )
    if not value.strip():
        raise HealthcheckError(f"assertion {assertion!r}: no value")
    return text


def _strings(name: str, value: Mapping[str, Any] | None) -> dict[str, str]:
    items = {str(k): str(v) for k, v in (value or {}).items()}
    if sum(len(k) + len(v) for k, v in items.items()) > 5120:
        raise HealthcheckError(f"{name}: at most 5120 characters")
    return items


@dataclass(frozen=True)
class Healthcheck:
    """A route's Cronitor check. `True` in a declaration means all defaults.

    Args:
        method: GET, HEAD, POST, PUT or PATCH.
        path_params: sample values for the route's parameters (`{"uid": 42}`).
        query: query string, as a dict or a string.
        headers, cookies: sent with the check.
        body: required for POST, PUT and PATCH, refused for the others.
        assertions: Cronitor assertions; default `response.code = 200`, `response.time < 2s`.
        schedule: seconds (30 to 3600) or "every N seconds|minutes"; default every 60 seconds.
        timeout: seconds, 1 to 15; default 10.
        regions, tags, note, name, key: as Cronitor has them (`key` overrides the derived one).

    Raises:
        HealthcheckError: a value Cronitor would refuse.
    """

    method: str = "GET"
    path_params: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, Any] | str | None = None
    headers: Mapping[str, Any] | None = None
    cookies: Mapping[str, Any] | None = None
    body: str | None = None
    assertions: Sequence[str] = DEFAULT_ASSERTIONS
    schedule: int | str = 60
    timeout: int = 10
    regions: Sequence[str] = ()
    tags: Sequence[str] = ()
    note: str | None = None
    name: str | None = None
    key: str | None = None
    follow_redirects: bool = True
    verify_ssl: bool = True

    def __post_init__(self) -> None:
        method = self.method.upper()
        if method not in METHODS:
            raise HealthcheckError(f"method={self.method!r}: one of {', '.join(METHODS)}")
        object.__setattr__(self, "method", method)
        if method in WITH_BODY and self.body is None:
            raise HealthcheckError(f"{method} checks need a body")
        if method not in WITH_BODY and self.body is not None:
            raise HealthcheckError(f"body: only POST, PUT and PATCH checks send one, not {method}")
        interval(self.schedule)
        timeout: object = self.timeout  # callers may pass anything
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 15:
            raise HealthcheckError(f"timeout={self.timeout!r}: 1 to 15 seconds")
        if isinstance(self.assertions, str):
            raise HealthcheckError("assertions: a list of strings, not one string")
        for assertion in self.assertions:
            validate_assertion(assertion)
        _strings("headers", self.headers)
        _strings("cookies", self.cookies)
        if self.key is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", self.key):
            raise HealthcheckError(f"key={self.key!r}: letters, digits, '_', '-', '.' (≤ 100)")

    @classmethod
    def of(cls, declaration: Healthcheck | bool | Mapping[str, Any]) -> Healthcheck:
        """`True`, a dict of options, or a `Healthcheck`."""
        if isinstance(declaration, Healthcheck):
            return declaration
        if declaration is True:
            return cls()
        if isinstance(declaration, Mapping):
            return cls(**declaration)
        raise HealthcheckError(f"{declaration!r}: True, a dict of options or a Healthcheck")
