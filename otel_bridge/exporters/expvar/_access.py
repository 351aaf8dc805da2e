"""Who may read `/debug/vars`, and what of the command line it shows.

By default only loopback clients (and local sockets, which have no address). Configured with
an allow-list of networks and/or a bearer token: a token alone opens the endpoint to any
client that presents it; both require both. `X-Forwarded-For` is believed only when the direct
peer is a configured trusted proxy. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Sequence

__all__ = ["Access", "redact_argv"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
ANYWHERE: tuple[Network, ...] = (
    ipaddress.ip_network("0.0.0.0/0"),
    ipaddress.ip_network("::/0"),
)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Access:
    """The endpoint's access rule.

    Args:
        allow: networks whose clients may read (default: loopback, or anywhere with a token).
        token: the bearer token required in `Authorization`, if any.
        trusted_proxies: peers whose `X-Forwarded-For` names the real client.
    """

    def __init__(
        self,
        allow: Sequence[Network] | None = None,
        token: str | None = None,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        if allow:
            self.allow = tuple(allow)
        else:
            self.allow = ANYWHERE if token else LOOPBACK
        self._token = f"Bearer {token}".encode() if token else None
        self.trusted = tuple(trusted_proxies)

    def client(self, peer: str | None, forwarded_for: str | None) -> Address | None:
        """The client's address: the peer, or from `X-Forwarded-For` behind trusted proxies."""
        address = _address(peer)
        if address is None or not forwarded_for or not self._is_trusted(address):
            return address
        hops = [_address(hop) for hop in forwarded_for.split(",")]
        for hop in reversed(hops):
            if hop is None:
                return None  # an unparsable hop: believe nothing further left
            if not self._is_trusted(hop):
                return hop
            address = hop
        return address

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self.trusted)

    def allowed(
        self, peer: str | None, forwarded_for: str | None, authorization: str | None
    ) -> bool:
        """Whether this request may read the endpoint."""
        if self._token is not None:
            presented = (authorization or "").encode("utf-8", "replace")
            if not hmac.compare_digest(presented, self._token):
                return False
        return self.network_allowed(peer, forwarded_for)

    def network_allowed(self, peer: str | None, forwarded_for: str | None) -> bool:
        """Whether the client's address is allowed (the token aside)."""
        if peer is None:
            # A Unix socket (uvicorn --uds): local by construction.
            return True
        client = self.client(peer, forwarded_for)
        if client is None:
            return False
        return any(client in network for network in self.allow)


_SECRET_NAME = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|auth",
    re.IGNORECASE,
)
_URL_CREDENTIALS = re.compile(r"([a-zA-Z][\w+.-]*://[^/@:\s]*):[^/@\s]*@")
_ASSIGNMENT = re.compile(r"^(-{0,2}[\w.-]+)=(.*)$", re.S)
REDACTED = "REDACTED"


def redact_argv(argv: Sequence[str], extra: Sequence[re.Pattern[str]] = ()) -> list[str]:
    """The command line with secrets replaced: `--password=…`, `token=…`, the value after a
    `--secret-key` flag, passwords in URLs, and whatever the `extra` patterns match."""
    out: list[str] = []
    redact_next = False
    for argument in argv:
        if redact_next:
            out.append(REDACTED)
            redact_next = False
            continue
        text = _URL_CREDENTIALS.sub(rf"\1:{REDACTED}@", argument)
        match = _ASSIGNMENT.match(text)
        if match is not None and _SECRET_NAME.search(match.group(1)):
            text = f"{match.group(1)}={REDACTED}"
        elif text.startswith("-") and match is None and _SECRET_NAME.search(text):
            redact_next = True
        for pattern in extra:
            text = pattern.sub(REDACTED, text)
        out.append(text)
    return out
