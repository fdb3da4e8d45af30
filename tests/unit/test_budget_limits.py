"""Time limits, the deadline, the finalization reserve, and how provider errors are treated."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

# openai builds its errors on httpx2 (its own fork of httpx), so these are httpx2 objects.
import httpx2
import openai
import pytest

from enduro.budgets.limits import (
    deadline_epoch,
    final_reserve_usd,
    parse_deadline,
    time_left,
    usd_cap_nano,
)
from enduro.budgets.metered import BACKOFF
from enduro.budgets.provider_errors import classify
from enduro.errors import ConfigError

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def test_deadline_forms() -> None:
    assert parse_deadline("+90m", NOW) == "2026-01-31T13:30:00+00:00"
    assert parse_deadline("2h", NOW) == "2026-01-31T14:00:00+00:00"
    assert parse_deadline("1.5d", NOW) == "2026-02-02T00:00:00+00:00"
    assert parse_deadline("2026-02-01T09:00Z", NOW) == "2026-02-01T09:00:00+00:00"
    assert parse_deadline("2026-02-01T09:00+02:00", NOW) == "2026-02-01T07:00:00+00:00"
    with pytest.raises(ConfigError, match="'tomorrow'"):
        parse_deadline("tomorrow", NOW)
    assert deadline_epoch("2026-01-31T12:00:00+00:00") == NOW.timestamp()
    assert deadline_epoch(None) is None
    with pytest.raises(ConfigError, match="--deadline"):
        deadline_epoch("soon")


def test_time_left_takes_the_tighter_limit() -> None:
    assert time_left(max_minutes=None, active_seconds=5, deadline=None, now=0) is None
    assert time_left(max_minutes=2, active_seconds=30, deadline=None, now=0) == (90, "max_minutes")
    assert time_left(max_minutes=2, active_seconds=30, deadline=60, now=10) == (50, "deadline")


def test_final_reserve_and_caps() -> None:
    assert final_reserve_usd(None, None) == 0
    assert final_reserve_usd(2.0, None) == pytest.approx(0.10)
    assert final_reserve_usd(2.0, 0.5) == 0.5
    assert usd_cap_nano(None, 0, final=False) is None
    assert usd_cap_nano(2.0, 0.1, final=False) == 1_900_000_000
    assert usd_cap_nano(2.0, 0.1, final=True) == 2_000_000_000


def _status_error(
    cls: type[openai.APIStatusError], status: int, code: str | None, headers: dict[str, str]
) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx2.Response(status, headers=headers, request=request)
    body: dict[str, Any] = {"message": f"injected {status}", "code": code, "type": code}
    return cls(f"Error code: {status} - sk-abcdef123456", response=response, body=body)


def test_rate_limit_is_retried_and_honours_retry_after() -> None:
    ms = classify(_status_error(openai.RateLimitError, 429, None, {"retry-after-ms": "1500"}), "t")
    assert ms is not None and ms.kind == "rate_limit" and ms.retry_after == 1.5
    assert not ms.billed, "a 429 generated nothing: its reservation is released"
    s = classify(_status_error(openai.RateLimitError, 429, None, {"retry-after": "3600"}), "t")
    assert s is not None and s.retry_after == 3600, "however long"


def test_quota_pauses_with_what_to_fix_and_no_retry() -> None:
    failure = classify(_status_error(openai.RateLimitError, 429, "insufficient_quota", {}), "t-1")
    assert failure is not None and failure.stop is not None
    assert failure.stop.status == "paused"
    assert failure.stop.stop_reason.startswith("insufficient_quota: ")
    assert "enduro resume t-1" in failure.stop.stop_reason
    assert "sk-abcdef" not in failure.stop.stop_reason, "key fragments are redacted"


@pytest.mark.parametrize(
    ("cls", "status", "code", "prefix"),
    [
        (openai.AuthenticationError, 401, "invalid_api_key", "invalid_api_key: "),
        (openai.BadRequestError, 400, "context_length_exceeded", "context_length_exceeded: "),
        (openai.NotFoundError, 404, "model_not_found", "model_not_found: "),
        (openai.BadRequestError, 400, None, "bad_request: "),
    ],
)
def test_unfixable_errors_fail_at_once(
    cls: type[openai.APIStatusError], status: int, code: str | None, prefix: str
) -> None:
    failure = classify(_status_error(cls, status, code, {}), "t")
    assert failure is not None and failure.stop is not None
    assert failure.stop.status == "failed" and failure.stop.stop_reason.startswith(prefix)
    assert not failure.billed


def test_server_and_connection_errors_are_retried_and_stay_charged() -> None:
    server = classify(_status_error(openai.InternalServerError, 503, None, {}), "t")
    assert server is not None and server.kind == "transient" and server.billed
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    cut = classify(openai.APIConnectionError(request=request), "t")
    assert cut is not None and cut.kind == "transient" and cut.billed
    assert classify(ValueError("not a provider error"), "t") is None


def test_backoff_grows_and_is_capped() -> None:
    delays = [BACKOFF.delay(n) for n in range(1, 12)]
    assert all(0 < d <= BACKOFF.max_delay for d in delays)
    assert BACKOFF.delay(1) <= BACKOFF.initial
    assert BACKOFF.delay(10) >= BACKOFF.max_delay / 2


def test_a_closed_event_loop_stops_the_run_with_what_to_do_even_when_wrapped() -> None:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    wrapped = openai.APIConnectionError(request=request)
    wrapped.__cause__ = RuntimeError("Event loop is closed")
    for exc in (RuntimeError("Event loop is closed"), wrapped):
        failure = classify(exc, "t-9")
        assert failure is not None and failure.kind == "fatal" and not failure.billed
        assert failure.stop is not None and failure.stop.status == "failed"
        assert failure.stop.stop_reason.startswith("model_loop_bound: ")
        assert "register_loop_binder" in failure.stop.stop_reason
        assert "`enduro resume t-9`" in failure.stop.stop_reason
    assert classify(RuntimeError("something else"), "t") is None
