"""The dashboard's access rules, without a server: bind rule, session cookie, CSRF, redirects."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from enduro.dashboard.app import _safe_next
from enduro.dashboard.security import Access, csrf_ok, is_loopback
from enduro.dashboard.source import decode_cursor, encode_cursor_values
from enduro.errors import ConfigError

TOKEN = "t" * 24


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
    ],
)
def test_loopback_is_decided_by_the_address(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_bind_beyond_loopback_needs_a_token_of_some_length() -> None:
    assert Access.check("127.0.0.1", None).token is None
    with pytest.raises(ConfigError, match="not a loopback address"):
        Access.check("0.0.0.0", None)
    with pytest.raises(ConfigError, match="at least 16"):
        Access.check("0.0.0.0", "short")
    assert Access.check("0.0.0.0", TOKEN).token == TOKEN


def test_session_cookies_are_macs_that_only_the_token_can_make() -> None:
    access = Access("0.0.0.0", TOKEN)
    value = access.session_value()
    assert TOKEN not in value and access.valid_session(value)
    nonce, _, mac = value.partition(".")
    assert not access.valid_session(f"{nonce}.{'0' * len(mac)}")
    assert not access.valid_session(f"other.{mac}")
    assert not Access("0.0.0.0", "u" * 24).valid_session(value)
    assert not access.valid_session(None) and not access.valid_session("")
    assert access.valid_token(TOKEN) and not access.valid_token(TOKEN + "x")
    assert not Access("127.0.0.1").valid_token("")


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/", "headers": raw}
    return Request(scope)


def test_csrf_needs_the_cookie_echoed_and_our_own_origin() -> None:
    own = {"host": "127.0.0.1:8780", "cookie": "enduro_csrf=abc123"}
    assert csrf_ok(_request({**own, "x-csrf-token": "abc123"}))
    assert csrf_ok(_request({**own, "x-csrf-token": "abc123", "origin": "http://127.0.0.1:8780"}))
    assert not csrf_ok(_request({**own, "x-csrf-token": "abc124"}))
    assert not csrf_ok(_request({**own}))
    assert not csrf_ok(_request({"host": "127.0.0.1:8780", "x-csrf-token": "abc123"}))
    evil = {**own, "x-csrf-token": "abc123", "origin": "http://evil.example"}
    assert not csrf_ok(_request(evil))
    assert not csrf_ok(_request({**own, "x-csrf-token": "abc123", "origin": "null"}))
    assert csrf_ok(_request(own), form_value="abc123")


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/threads/x", "/threads/x"),
        (None, "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("threads", "/"),
    ],
)
def test_login_redirects_only_to_our_own_paths(target: str | None, safe: str) -> None:
    assert _safe_next(target) == safe


def test_cursors_round_trip_and_garbage_is_refused() -> None:
    assert decode_cursor(encode_cursor_values(1796004828.531735, "t-1")) == (
        1796004828.531735,
        "t-1",
    )
    for bad in ("", "not-a-cursor", "W10", "eyJhIjogMX0"):
        with pytest.raises(ValueError, match="bad cursor"):
            decode_cursor(bad)
