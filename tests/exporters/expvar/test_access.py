from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from otel_bridge._secrets import SECRET_PARAMS, redact_argv, redact_path, redact_query
from otel_bridge.exporters.expvar._access import Access

TOKEN = "correct-horse-battery-staple"
CORPUS = Path(__file__).parents[2] / "data" / "secrets.jsonl"


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def shapes(view: str) -> list[Any]:
    cases = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    return [
        pytest.param(c["given"], c["shown"], id=str(c["given"])[:60])
        for c in cases
        if c["view"] == view
    ]


@pytest.mark.parametrize(
    ("peer", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.5", False),
        ("garbage", False),
        ("testclient", False),
        (None, True),  # uvicorn --uds: no client
        ("", True),  # gunicorn on a unix socket: empty REMOTE_ADDR
    ],
)
def test_default_is_local_clients_only(peer: str | None, allowed: bool) -> None:
    assert Access().allowed(peer, {}) is allowed


def test_allow_list_opens_those_networks_only() -> None:
    access = Access(allow=[net("10.0.0.0/8")])
    assert access.allowed("10.1.2.3", {})
    assert not access.allowed("11.0.0.1", {})
    assert not access.allowed("127.0.0.1", {}), "the list replaces the default"
    assert not access.allowed(None, {}), "a unix socket is local, and local is not on the list"
    assert Access(allow=[net("127.0.0.1/32")]).allowed(None, {})
    assert Access(allow=[net("::1/128")]).allowed("", {})


def test_a_token_alone_admits_any_client_that_presents_it() -> None:
    access = Access(token=TOKEN)
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert access.allowed("203.0.113.9", bearer)
    assert access.allowed("127.0.0.1", {**bearer, "x-forwarded-for": "203.0.113.9"})
    assert not access.allowed("203.0.113.9", {"authorization": f"Bearer {TOKEN}x"})
    assert not access.allowed("127.0.0.1", {}), "even loopback needs the token"
    assert not access.allowed("127.0.0.1", {"authorization": TOKEN}), "Bearer is required"


def test_token_and_allow_list_are_both_required() -> None:
    access = Access(allow=[net("10.0.0.0/8")], token=TOKEN)
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert access.allowed("10.0.0.5", bearer)
    assert not access.allowed("10.0.0.5", {})
    assert not access.allowed("8.8.8.8", bearer)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-for": "203.0.113.9"},
        {"x-real-ip": "203.0.113.9"},
        {"forwarded": "for=203.0.113.9;proto=https"},
        {"forwarded": 'for="[2001:db8::1]:4711"'},
        {"x-forwarded-for": "203.0.113.9, 127.0.0.1"},  # nginx's $proxy_add_x_forwarded_for
        {"x-forwarded-for": "127.0.0.1, 203.0.113.9"},  # a client's forged hop first
        {"x-forwarded-for": "127.0.0.1", "x-real-ip": "203.0.113.9"},
        {"x-forwarded-for": "not-an-ip"},
        {"forwarded": "for=unknown"},
        {"forwarded": "for=_hidden"},
        {"x-forwarded-proto": "https"},  # proxied, naming nobody
        {"via": "1.1 edge"},
    ],
)
@pytest.mark.parametrize("peer", ["127.0.0.1", "::1", None, ""])
def test_a_local_peer_forwarding_for_someone_else_is_refused(
    peer: str | None, headers: dict[str, str]
) -> None:
    """A same-host proxy (TCP or unix socket) is not a local client's proof."""
    assert not Access().allowed(peer, headers)


def test_a_local_proxy_not_configured_as_trusted_is_never_a_local_clients_proof() -> None:
    """Whatever it forwards, and whatever a client wrote in front of it: a proxy on this host
    that sends only X-Forwarded-Proto, with the client's own X-Forwarded-For: 127.0.0.1."""
    forged = {"x-forwarded-proto": "https", "x-forwarded-for": "127.0.0.1"}
    assert not Access().allowed("127.0.0.1", forged)
    assert not Access().allowed("127.0.0.1", {"x-forwarded-for": "127.0.0.1"})
    assert not Access().allowed(None, {"x-real-ip": "127.0.0.1", "forwarded": "for=127.0.0.1"})
    trusted = Access(trusted_proxies=[net("127.0.0.1/32")])
    assert trusted.allowed("127.0.0.1", {"x-forwarded-for": "127.0.0.1"}), "told to trust it"
    assert not trusted.allowed("127.0.0.1", forged | {"x-forwarded-for": "127.0.0.1, 1.2.3.4"})


@pytest.mark.parametrize(
    "forwarded",
    [
        "for=203.0.113.9;for=127.0.0.1",  # a Host header nginx copied in: `host=x;for=…`
        'for=203.0.113.9;host="a;for=127.0.0.1"',
        'for="127.0.0.1, 203.0.113.9"',
        "for=127.0.0.1;by=x, for=203.0.113.9",
    ],
)
def test_forwarded_is_read_by_its_grammar(forwarded: str) -> None:
    behind = Access(trusted_proxies=[net("127.0.0.1/32")])
    assert not behind.allowed("127.0.0.1", {"forwarded": forwarded})


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8000", True),
        ("localhost", True),
        ("app.localhost:8000", True),
        ("[::1]:8000", True),
        ("127.9.9.9", True),
        ("shop.example.com", False),  # a proxy passing the public Host on, or DNS rebinding
        ("attacker.example:8000", False),
        ("10.0.0.5", False),
    ],
)
def test_a_loopback_client_must_look_like_one_under_the_default(host: str, allowed: bool) -> None:
    assert Access().allowed("127.0.0.1", {"host": host}) is allowed
    configured = Access(allow=[net("127.0.0.0/8")])
    assert configured.allowed("127.0.0.1", {"host": host}), "an allow-list is the user's rule"
    assert Access().allowed(None, {"host": host}), "a unix socket: no browser, no rebinding"


def test_a_cross_site_browser_request_is_refused_under_the_default() -> None:
    headers = {"host": "127.0.0.1:8000", "sec-fetch-site": "cross-site"}
    assert not Access().allowed("127.0.0.1", headers)
    assert Access().allowed("127.0.0.1", {**headers, "sec-fetch-site": "same-origin"})


def test_a_server_that_already_put_the_forwarded_client_in_the_peer_place() -> None:
    """uvicorn's --proxy-headers sets the client from X-Forwarded-For and keeps the header:
    the chain then ends in the peer twice, and the verdict is the client's."""
    assert not Access().allowed("203.0.113.9", {"x-forwarded-for": "203.0.113.9"})
    behind = Access(allow=[net("198.51.100.0/24")], trusted_proxies=[net("127.0.0.1/32")])
    assert behind.allowed("198.51.100.7", {"x-forwarded-for": "198.51.100.7"})
    assert behind.allowed("198.51.100.7", {"x-forwarded-for": "198.51.100.7, 127.0.0.1"})
    assert not behind.allowed("203.0.113.9", {"x-forwarded-for": "198.51.100.7, 203.0.113.9"})


@pytest.mark.parametrize("header", ["x-forwarded-for", "x-real-ip", "forwarded"])
def test_a_trusted_proxy_client_is_checked_against_the_allow_list(header: str) -> None:
    behind = Access(allow=[net("198.51.100.0/24")], trusted_proxies=[net("10.0.0.0/8")])

    def value(*hops: str) -> str:
        if header == "forwarded":
            return ", ".join(f'for="{hop}"' for hop in hops)
        return ", ".join(hops)

    assert behind.allowed("10.0.0.2", {header: value("198.51.100.7")})
    assert not behind.allowed("10.0.0.2", {header: value("203.0.113.9")})
    assert not behind.allowed("10.0.0.2", {header: value("not-an-ip")})
    assert not behind.allowed("203.0.113.1", {}), "the proxy's clients only, not anyone"
    if header != "x-real-ip":
        # A client cannot smuggle an allowed address in front of its own.
        assert not behind.allowed("10.0.0.2", {header: value("198.51.100.7", "203.0.113.9")})
        assert behind.allowed("10.0.0.2", {header: value("198.51.100.7", "10.0.0.3")})


def test_every_naming_header_must_name_an_allowed_client() -> None:
    """The proxy sets one header; a client may send another that it passes on."""
    behind = Access(allow=[net("198.51.100.0/24")], trusted_proxies=[net("127.0.0.1/32")])
    forged = {"x-forwarded-for": "203.0.113.9", "x-real-ip": "198.51.100.7"}
    assert not behind.allowed("127.0.0.1", forged)
    assert not behind.allowed("127.0.0.1", {"x-forwarded-proto": "https"}), "names nobody"


def test_a_unix_socket_proxy_is_trusted_only_when_configured() -> None:
    forwarded = {"x-forwarded-for": "198.51.100.7"}
    assert not Access(allow=[net("198.51.100.0/24")]).allowed(None, forwarded)
    trusted = Access(allow=[net("198.51.100.0/24")], trust_unix=True)
    assert trusted.allowed(None, forwarded)
    assert trusted.allowed("", forwarded)
    assert not trusted.allowed(None, {"x-forwarded-for": "203.0.113.9"})
    assert not trusted.allowed(None, {}), "the proxy's own request: local, not on the list"


def test_the_token_compares_digests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Constant time whatever the length presented: compare_digest only ever sees two
    32-byte digests (it returns early on inputs of unequal length)."""
    import hmac

    lengths: list[tuple[int, int]] = []
    compare = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        lengths.append((len(a), len(b)))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)  # the module _access calls
    access = Access(token=TOKEN)
    presented = ["", "B", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}" * 100]
    assert [access.allowed("127.0.0.1", {"authorization": p}) for p in presented] == [False] * 4
    assert access.allowed("127.0.0.1", {"authorization": f"Bearer {TOKEN}"})
    assert lengths == [(32, 32)] * 5


@pytest.mark.parametrize(("argv", "shown"), shapes("cmdline"))
def test_no_secret_shape_reaches_the_command_line(argv: list[str], shown: list[str]) -> None:
    assert redact_argv(argv) == shown


@pytest.mark.parametrize(("query", "shown"), shapes("query"))
def test_no_secret_shape_reaches_a_query(query: str, shown: str) -> None:
    assert redact_query(query, SECRET_PARAMS) == shown


@pytest.mark.parametrize(("path", "shown"), shapes("path"))
def test_no_secret_shape_reaches_a_path(path: str, shown: str) -> None:
    assert redact_path(path) == shown


def test_extra_patterns_are_removed_too() -> None:
    extra = [re.compile(r"--dsn=\S+")]
    assert redact_argv(["app", "--dsn=opaque-thing", "--port=80"], extra) == [
        "app",
        "REDACTED",
        "--port=80",
    ]
