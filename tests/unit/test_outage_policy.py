"""The outage policy (enduro.storage.outage) without a database: what is retried, for
how long, and how a run's time limit and an outage that already outlasted its timeout cut
the wait short."""

from __future__ import annotations

import sqlite3
import time

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from enduro.errors import ConfigError, StopReason
from enduro.storage.outage import (
    DatabaseUnreachable,
    OutagePolicy,
    is_unreachable_error,
    outage_seconds_from_env,
    run_time_limit,
)


def _locked() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database is locked")
    exc.sqlite_errorcode = 5
    return exc


def test_only_unanswered_calls_count_as_an_outage() -> None:
    assert is_unreachable_error(PoolTimeout("couldn't get a connection after 5.00 sec"))
    assert is_unreachable_error(psycopg.OperationalError("server closed the connection"))
    assert is_unreachable_error(_locked())
    assert not is_unreachable_error(sqlite3.OperationalError("no such table: enduro_spend"))
    assert not is_unreachable_error(psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_unreachable_error(psycopg.ProgrammingError("syntax error"))
    assert not is_unreachable_error(ValueError("locked"))


async def test_retries_until_the_database_answers() -> None:
    policy = OutagePolicy(timeout=10.0, initial=0.01)
    attempts = 0

    async def op() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise _locked()
        return "ok"

    assert await policy.call(op) == "ok"
    assert attempts == 4 and policy.down_for is None


async def test_other_errors_raise_at_once() -> None:
    attempts = 0

    async def op() -> None:
        nonlocal attempts
        attempts += 1
        raise psycopg.errors.UniqueViolation("duplicate key")

    with pytest.raises(psycopg.errors.UniqueViolation):
        await OutagePolicy(timeout=10.0).call(op)
    assert attempts == 1


async def test_gives_up_after_the_timeout_then_fails_fast_until_a_success() -> None:
    policy = OutagePolicy(timeout=0.3, initial=0.05)

    async def down() -> None:
        raise PoolTimeout("couldn't get a connection after 1.00 sec")

    with pytest.raises(DatabaseUnreachable) as caught:
        await policy.call(down)
    assert StopReason.of(caught.value.stop_reason) is StopReason.DATABASE_UNREACHABLE
    assert "PoolTimeout" in caught.value.stop_reason and "resume" in caught.value.stop_reason
    started = time.monotonic()
    with pytest.raises(DatabaseUnreachable):
        await policy.call(down)  # the outage outlasted its timeout: one attempt, no sleep
    assert time.monotonic() - started < 0.05
    assert policy.attempt_seconds == 1.0

    async def up() -> int:
        return 1

    assert await policy.call(up) == 1
    assert policy.down_for is None


async def test_the_runs_time_limit_cuts_the_wait_short() -> None:
    policy = OutagePolicy(timeout=60.0, initial=0.05)

    async def down() -> None:
        raise _locked()

    started = time.monotonic()
    with run_time_limit((0.3, "deadline")), pytest.raises(DatabaseUnreachable) as caught:
        await policy.call(down)
    assert time.monotonic() - started < 2.0
    assert "deadline ran out" in caught.value.stop_reason


def test_timeout_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENDURO_DB_OUTAGE_TIMEOUT", raising=False)
    assert outage_seconds_from_env() == 60.0
    monkeypatch.setenv("ENDURO_DB_OUTAGE_TIMEOUT", "15")
    assert outage_seconds_from_env() == 15.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("ENDURO_DB_OUTAGE_TIMEOUT", bad)
        with pytest.raises(ConfigError, match="ENDURO_DB_OUTAGE_TIMEOUT"):
            outage_seconds_from_env()
