"""The error module, the one redaction rule and the one Retry-After parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

import enduro.errors as errors
from enduro._redact import redact
from enduro._retry_after import parse_retry_after, retry_after_of
from enduro.errors import (
    BudgetStop,
    ConfigError,
    EnduroError,
    ErrorCode,
    PricingUnknown,
    ProviderStop,
    RunStop,
    StopReason,
    UnknownThread,
)


def test_every_error_class_is_an_enduro_error() -> None:
    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, EnduroError), name
    assert issubclass(ConfigError, ValueError), "callers that caught ValueError keep working"
    assert UnknownThread("x").exit_code == 2 and UnknownThread("x").code == "unknown_thread"


def test_error_json_shape() -> None:
    body = ConfigError("--max-usd must be > 0, got -1").to_json()
    assert body == {"error": {"code": "config", "message": "--max-usd must be > 0, got -1"}}
    assert json.loads(json.dumps(body)) == body
    assert isinstance(ErrorCode.USAGE, str) and str(ErrorCode.USAGE) == "usage"


def test_stop_reason_values_are_the_status_contract() -> None:
    # These strings appear in status JSON written before the enum existed.
    assert [r.value for r in StopReason][:9] == [
        "max_usd",
        "max_minutes",
        "max_iterations",
        "max_llm_calls",
        "max_tool_calls",
        "max_tokens",
        "deadline",
        "signal",
        "cancel",
    ]
    text = StopReason.INSUFFICIENT_QUOTA.explain("add credit")
    assert text == "insufficient_quota: add credit"
    assert StopReason.of(text) is StopReason.INSUFFICIENT_QUOTA
    assert StopReason.of("max_usd") is StopReason.MAX_USD
    assert StopReason.of("pool:team") is None and StopReason.of(None) is None
    assert StopReason.of("ValueError: boom") is None


def test_run_stops_store_a_plain_string() -> None:
    stop = BudgetStop(StopReason.MAX_USD)
    assert type(stop.stop_reason) is str, "an enum in state would pin checkpoints to a class"
    assert stop.update() == {"status": "budget_exhausted", "stop_reason": "max_usd"}
    assert stop.reason is StopReason.MAX_USD
    assert ProviderStop("rate_limited: x", status="paused").status == "paused"
    assert issubclass(PricingUnknown, RunStop)


@pytest.mark.parametrize(
    ("text", "leaked", "kept"),
    [
        ("postgresql://app:hunter2@db:5432/x", "hunter2", "postgresql://***@db:5432/x"),
        ("https://u:pw@h.example/p?token=abc", "abc", "https://***@h.example/p?…"),
        ("Error code: 401 - sk-proj-abcdef123456", "abcdef123456", "sk-***"),
        ("Authorization: Bearer abc.def-ghi", "abc.def", "Bearer ***"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "MfKQ9r8", "whsec_***"),
        ("postgresql://db/x?password=hunter2&sslmode=require", "hunter2", "sslmode=require"),
    ],
)
def test_redact_masks_every_kind_of_secret(text: str, leaked: str, kept: str) -> None:
    clean = redact(text)
    assert leaked not in clean
    assert kept in clean


def test_redact_caps_length_and_passes_none() -> None:
    assert redact("x" * 900, 500) == "x" * 499 + "…"
    assert redact("short", 500) == "short"
    assert redact(None) is None


def test_retry_after_seconds_dates_and_junk() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("12") == 12
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90)), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90)), now) == 0
    for junk in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(junk) is None


def test_retry_after_headers_prefer_milliseconds() -> None:
    assert retry_after_of({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_of({"retry-after-ms": "junk", "retry-after": "9"}) == 9
    assert retry_after_of({}) is None
