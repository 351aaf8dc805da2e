from __future__ import annotations

import pytest

from otel_bridge import _http
from otel_bridge._http import (
    ASGIHeaders,
    WSGIHeaders,
    normalize_method,
    sanitize_text,
    split_host,
)


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


def test_asgi_headers_decode_lazily_and_join_repeats() -> None:
    raw = [(b"Accept", b"a"), (b"x-id", b"1"), (b"accept", b"b"), (b"x-\xff", b"\xe9")]
    headers = ASGIHeaders(raw)
    assert headers.get("ACCEPT") == "a,b", "one lookup scans without decoding the rest"
    assert headers.get("missing", "d") == "d"
    assert headers._decoded is None
    assert dict(headers) == {"accept": "a,b", "x-id": "1", "x-\xff": "\xe9"}
    assert len(headers) == 3 and headers["x-id"] == "1"
    assert headers.get("accept") == "a,b" and headers.get("nope") is None


def test_wsgi_headers_read_http_and_content_keys() -> None:
    environ = {
        "HTTP_X_REQUEST_ID": "r1",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "",
        "PATH_INFO": "/",
    }
    headers = WSGIHeaders(environ)
    assert headers.get("x-request-id") == "r1"
    assert headers.get("Content-Type") == "text/plain"
    assert headers.get("content-length", "none") == "none"
    assert headers.get("user-agent") is None
    assert dict(headers) == {"x-request-id": "r1", "content-type": "text/plain"}
    assert len(headers) == 2 and headers["content-type"] == "text/plain"
    assert headers.get("x-request-id") == "r1"


def test_header_lookups_stay_per_request() -> None:
    # The names asked for are cached process-wide; the values must come from each request.
    first = ASGIHeaders([(b"X-Request-Id", b"one"), (b"x-request-id", b"two")])
    second = ASGIHeaders([(b"x-request-id", b"three")])
    assert first.get("x-request-id") == "one,two" and second.get("X-Request-ID") == "three"
    assert ASGIHeaders([]).get("x-request-id") is None
    environ = {"HTTP_X_REQUEST_ID": "w1", "CONTENT_LENGTH": "5"}
    assert WSGIHeaders(environ).get("x-request-id") == "w1"
    assert WSGIHeaders({}).get("x-request-id", "none") == "none"
    assert WSGIHeaders(environ).get("content-length") == "5"
    assert WSGIHeaders({"CONTENT_LENGTH": ""}).get("content-length") is None


def test_header_name_caches_are_bounded_and_lookups_go_on_past_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fresh caches for this test, the process's own back afterwards.
    monkeypatch.setattr(_http, "_WANTED", {})
    monkeypatch.setattr(_http, "_ENVIRON_NAMES", {})
    names = [f"x-custom-{i}" for i in range(_http._NAME_CACHE_SIZE + 10)]
    asgi = ASGIHeaders([(name.encode(), str(i).encode()) for i, name in enumerate(names)])
    wsgi = WSGIHeaders(
        {"HTTP_" + name.upper().replace("-", "_"): str(i) for i, name in enumerate(names)}
    )
    assert [asgi.get(name) for name in names] == [str(i) for i in range(len(names))]
    assert [wsgi.get(name) for name in names] == [str(i) for i in range(len(names))]
    assert len(_http._WANTED) == len(_http._ENVIRON_NAMES) == _http._NAME_CACHE_SIZE
    # Asked again: the first names from the caches, the rest made again.
    assert [asgi.get(name) for name in names] == [str(i) for i in range(len(names))]
    assert [wsgi.get(name) for name in names] == [str(i) for i in range(len(names))]
