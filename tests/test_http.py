from __future__ import annotations

import pytest

from otel_bridge._http import normalize_method, sanitize_text, split_host


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", ("example.com", None)),
        ("example.com:8080", ("example.com", 8080)),
        ("example.com:", ("example.com:", None)),
        ("example.com:http", ("example.com:http", None)),
        ("example.com:70000", ("example.com:70000", None)),
        ("[::1]:9000", ("::1", 9000)),
        ("[::1]", ("::1", None)),
        ("[::1]x", ("::1", None)),
        ("[::1", ("[::1", None)),
        ("::1", ("::1", None)),
    ],
)
def test_split_host(host: str, expected: tuple[str, int | None]) -> None:
    assert split_host(host) == expected


def test_methods_outside_the_known_set_become_other() -> None:
    assert normalize_method("GET") == "GET"
    assert normalize_method("get") == "_OTHER"
    assert normalize_method("PROPFIND") == "_OTHER"


def test_sanitize_text_replaces_lone_surrogates_only() -> None:
    assert sanitize_text("/plain") == "/plain"
    assert sanitize_text("/café") == "/café"
    assert sanitize_text("/a\udcff\ud800b") == "/a\ufffd\ufffdb"
