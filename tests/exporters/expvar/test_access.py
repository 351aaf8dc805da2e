from __future__ import annotations

import ipaddress
import re

import pytest

from otel_bridge.exporters.expvar._access import Access, redact_argv

TOKEN = "correct-horse-battery-staple"


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


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
        (None, True),
    ],
)
def test_default_is_loopback_only(peer: str | None, allowed: bool) -> None:
    assert Access().allowed(peer, None, None) is allowed


def test_allow_list_opens_those_networks_only() -> None:
    access = Access(allow=[net("10.0.0.0/8")])
    assert access.allowed("10.1.2.3", None, None)
    assert not access.allowed("11.0.0.1", None, None)
    assert not access.allowed("127.0.0.1", None, None), "the list replaces the default"


def test_a_token_alone_admits_any_client_that_presents_it() -> None:
    access = Access(token=TOKEN)
    assert access.allowed("203.0.113.9", None, f"Bearer {TOKEN}")
    assert not access.allowed("203.0.113.9", None, f"Bearer {TOKEN}x")
    assert not access.allowed("127.0.0.1", None, None), "even loopback needs the token"
    assert not access.allowed("127.0.0.1", None, TOKEN), "the Bearer scheme is required"


def test_token_and_allow_list_are_both_required() -> None:
    access = Access(allow=[net("10.0.0.0/8")], token=TOKEN)
    assert access.allowed("10.0.0.5", None, f"Bearer {TOKEN}")
    assert not access.allowed("10.0.0.5", None, None)
    assert not access.allowed("8.8.8.8", None, f"Bearer {TOKEN}")


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    spoofed = Access()
    assert not spoofed.allowed("203.0.113.9", "127.0.0.1", None)
    behind_proxy = Access(allow=[net("198.51.100.0/24")], trusted_proxies=[net("10.0.0.0/8")])
    assert behind_proxy.allowed("10.0.0.2", "198.51.100.7", None)
    # A client cannot smuggle an address in front of the real one.
    assert not behind_proxy.allowed("10.0.0.2", "198.51.100.7, 203.0.113.9", None)
    assert behind_proxy.allowed("10.0.0.2", "203.0.113.9, 198.51.100.7, 10.0.0.3", None)
    assert not behind_proxy.allowed("10.0.0.2", "not-an-ip", None)
    assert not behind_proxy.allowed("203.0.113.1", None, None)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["app", "--password=hunter2", "--port=80"], ["app", "--password=REDACTED", "--port=80"]),
        (["app", "--api-key", "abc", "run"], ["app", "--api-key", "REDACTED", "run"]),
        (["app", "TOKEN=xyz", "DEBUG=1"], ["app", "TOKEN=REDACTED", "DEBUG=1"]),
        (["app", "--db=postgres://u:pw@db/x"], ["app", "--db=postgres://u:REDACTED@db/x"]),
        (["app", "redis://:secret@cache:6379"], ["app", "redis://:REDACTED@cache:6379"]),
        (["gunicorn", "-w", "4", "app:app"], ["gunicorn", "-w", "4", "app:app"]),
    ],
)
def test_secrets_are_redacted_from_the_command_line(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


def test_extra_patterns_redact_too() -> None:
    assert redact_argv(["app", "--dsn=abc"], [re.compile(r"abc")]) == ["app", "--dsn=REDACTED"]
