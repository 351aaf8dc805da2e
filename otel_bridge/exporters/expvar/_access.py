"""Who may read `/debug/vars`.

By default only local clients: loopback addresses, and a Unix-socket peer that forwards nobody.
Configured with an allow-list of networks and/or a bearer token: a token alone opens the
endpoint to any client that presents it; both require both.

A request that a proxy forwards for someone else is that someone's request. Every party a
request names (`Forwarded: for=`, `X-Forwarded-For`, `X-Real-IP`), and the peer itself, must be
allowed, except the proxies configured as trusted, which only pass the request on. A request
that shows it was proxied but names nobody (`Via`, `X-Forwarded-Host`, …) is refused: its client
is unknown. So a same-host proxy that says who it forwards for never makes a remote client
local, whether or not the server (uvicorn's `--proxy-headers`) has already put the forwarded
address in the peer's place.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Final

from otel_bridge._http import split_host

__all__ = ["UNIX", "Access"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class _UnixPeer:
    """The peer of a Unix socket: no network address, on this host by construction."""

    def __repr__(self) -> str:
        return "unix"


UNIX: Final = _UnixPeer()
Party = Address | _UnixPeer

LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
_LOCAL = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
# The headers that name the party a request is forwarded for.
NAMING = ("forwarded", "x-forwarded-for", "x-real-ip")
# Headers that only proxies add: a request with one was forwarded, for someone.
PROXIED = (
    *NAMING,
    "via",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-original-forwarded-for",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
)


def _address(text: str) -> Address | None:
    """An address as a proxy writes it: bare, `[v6]`, `v4:port`, `[v6]:port`, or quoted."""
    host, _ = split_host(text.strip().strip('"').strip())
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _loopback_host(host: str) -> bool:
    """Whether a `Host` header names this machine's loopback: localhost (or a name under
    .localhost), 127.0.0.0/8 or [::1], with any port."""
    name = split_host(host.strip().lower())[0].rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _address(name)
    return address is not None and any(address in network for network in LOOPBACK)


def _peer(peer: str | None) -> Party | None:
    """The direct peer: an address, UNIX when the server has none (uvicorn --uds gives no
    client, gunicorn on a socket an empty REMOTE_ADDR), None when it is not an address."""
    if not peer:
        return UNIX
    return _address(peer)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _forwarded_for(value: str) -> list[Address | None]:
    """The `for=` parties of an RFC 7239 `Forwarded` header, first hop first (None for an
    element without one, with it twice, `unknown`, or an obfuscated identifier). Quoted
    strings are read as such: a `;` or `,` inside one separates nothing."""
    parties: list[Address | None] = []
    for element in _split_outside_quotes(value[:4096], ","):
        found: list[str] = []
        for pair in _split_outside_quotes(element, ";"):
            name, _, text = pair.partition("=")
            if name.strip().lower() == "for":
                found.append(text)
        parties.append(_address(found[0]) if len(found) == 1 else None)
    return parties


def _chain(name: str, value: str) -> list[Address | None]:
    if name == "forwarded":
        return _forwarded_for(value)
    return [_address(hop) for hop in value[:4096].split(",")]


class Access:
    """The endpoint's access rule.

    Args:
        allow: networks whose clients may read (default: loopback, or anywhere with a token).
        token: the bearer token required in `Authorization`, if any.
        trusted_proxies: proxies that pass requests on; the parties they name are checked
            instead of them.
        trust_unix: a Unix-socket peer is such a proxy too.
    """

    def __init__(
        self,
        allow: Sequence[Network] | None = None,
        token: str | None = None,
        trusted_proxies: Sequence[Network] = (),
        trust_unix: bool = False,
    ) -> None:
        self.anywhere = bool(token) and not allow
        self.default = not allow and not token
        self.allow = tuple(allow) if allow else LOOPBACK
        # Compared as digests: constant time whatever the presented value's length.
        self._token = _digest(f"Bearer {token}") if token else None
        self.trusted = tuple(trusted_proxies)
        self.trust_unix = trust_unix

    def allowed(self, peer: str | None, headers: Mapping[str, str]) -> bool:
        """Whether this request may read the endpoint."""
        if self._token is not None:
            presented = _digest(headers.get("authorization") or "")
            if not hmac.compare_digest(presented, self._token):
                return False
        return self.network_allowed(peer, headers)

    def network_allowed(self, peer: str | None, headers: Mapping[str, str]) -> bool:
        """Whether every party the request comes from is allowed (the token aside)."""
        if self.anywhere:
            return True
        direct = _peer(peer)
        if direct is None:
            return False
        proxied = any(headers.get(name) is not None for name in PROXIED)
        if not self._trusts(direct):
            if proxied and self._local(direct):
                # A proxy on this host that we were not told to trust: whatever it forwards,
                # and whatever a client wrote in front of it, is not a local client's proof.
                return False
            if not proxied and direct is not UNIX and not self._plain_local(headers):
                return False
        chains = [_chain(name, value) for name in NAMING if (value := headers.get(name))]
        if not chains:
            if proxied:
                return False  # forwarded, for nobody we know of
            return self._allows(direct)
        return all(self._chain_allowed([*chain, direct]) for chain in chains)

    def _local(self, party: Party) -> bool:
        return party is UNIX or any(party in network for network in LOOPBACK)

    def _plain_local(self, headers: Mapping[str, str]) -> bool:
        """Under the default rule (loopback only), a loopback client must look like one: a
        browser page from elsewhere (`Sec-Fetch-Site: cross-site`, or a `Host` that is not
        a loopback name: DNS rebinding) and a proxy that passes the public `Host` on are
        refused. With an allow-list or a token configured, that is the configuration's."""
        if not self.default:
            return True
        if (headers.get("sec-fetch-site") or "").strip().lower() == "cross-site":
            return False
        host = headers.get("host")
        return host is None or _loopback_host(host)

    def _chain_allowed(self, chain: list[Party | None]) -> bool:
        # Trusted proxies only pass the request on; every other party must be allowed. A
        # chain of trusted proxies alone is judged by its first party.
        parties = [party for party in chain if not self._trusts(party)] or chain[:1]
        return all(party is not None and self._allows(party) for party in parties)

    def _trusts(self, party: Party | None) -> bool:
        if party is UNIX:
            return self.trust_unix
        return party is not None and any(party in network for network in self.trusted)

    def _allows(self, party: Party) -> bool:
        if party is UNIX:
            # As local as loopback: allowed wherever loopback is.
            return any(address in network for address in _LOCAL for network in self.allow)
        return any(party in network for network in self.allow)


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "replace")).digest()
