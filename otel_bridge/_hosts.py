"""A request's Host as a label: bounded, whoever sends the requests.

A view that groups by host (Pinba's `server_name`) gets the Host only when it is one of the
app's own hosts, written as Django's ``ALLOWED_HOSTS`` writes them (a name; ``.example.com``
for it and its subdomains; ``*`` for any). A subdomain matched by ``.example.com`` is labelled
``.example.com`` (list the ones to tell apart). Any other Host is `OTHER_HOST`. With no list,
the first `UNLISTED_LIMIT` hosts seen are kept and the rest are `OTHER_HOST`; with ``*``, the
first `ANY_LIMIT`. So a client inventing Hosts adds at most one label.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ANY_LIMIT", "OTHER_HOST", "UNLISTED_LIMIT", "HostLabels"]

OTHER_HOST = "<other host>"
UNLISTED_LIMIT = 16
ANY_LIMIT = 64


def _matching(host: str, patterns: tuple[str, ...]) -> str | None:
    """The pattern `host` (lowercase, no port) matches as Django matches ``ALLOWED_HOSTS``
    (an IPv6 address matches its bracketed form), or None."""
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern.startswith("[") and pattern.endswith("]"):
            pattern = pattern[1:-1]  # split_host gives IPv6 hosts without their brackets
        if pattern == "*" or host == pattern:
            return pattern
        if pattern.startswith(".") and (host.endswith(pattern) or host == pattern[1:]):
            return pattern
    return None


class HostLabels:
    """Host → label; a request costs a set lookup.

    Args:
        allowed: the app's hosts (empty: none declared, the first `UNLISTED_LIMIT` are kept).
    """

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self.allowed = tuple(allowed)
        self._check = bool(self.allowed) and "*" not in self.allowed
        self._limit = ANY_LIMIT if self.allowed else UNLISTED_LIMIT
        self._kept: set[str] = set()

    def __call__(self, host: str | None) -> str | None:
        """The label of `host` (None stays None: the caller's fallback)."""
        if host is None:
            return None
        if host in self._kept:
            return host
        name = host.lower().rstrip(".")
        if name in self._kept:
            return name
        if self._check:
            pattern = _matching(name, self.allowed)
            if pattern is None:
                return OTHER_HOST
            if pattern.startswith(".") and name != pattern[1:]:
                # Any subdomain: a client could invent them. The pattern is the label.
                return pattern
        if len(self._kept) >= self._limit:
            return OTHER_HOST
        self._kept.add(name)
        return name
