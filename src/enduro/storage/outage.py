"""Riding out a database outage: the one retry path of every database call a run makes.

A run treats its database like its model provider: a call that fails because the database
cannot be reached (PostgreSQL down, restarting, behind a dropped proxy; SQLite locked or
busy by another process) is retried with jittered exponential backoff, and only when the
outage has lasted longer than `OutagePolicy.timeout` does it raise `DatabaseUnreachable`,
which the runner turns into a resumable pause (`paused`, exit 4, `stop_reason`
`database_unreachable: …`), never a failure.

Invariants:
- An outage is measured from the first failure any caller saw, not per call: when the
  heartbeat has been failing for 50 s, a checkpoint write that starts failing then waits 10 s
  more (with the 60 s default), so the run ends about `timeout` after the database went away.
  Once that time has passed, every call gets one attempt and no wait (the runner's teardown
  does not wait the outage out again); the first success ends the outage.
- Only errors that say "no answer from the database" are retried: connection failures,
  pool timeouts, a server that closed or terminated the connection, SQLite's SQLITE_BUSY /
  SQLITE_LOCKED. A bad statement, a constraint violation or a programming error raises at
  once, as before.
- A run's time limits bound the wait too: inside `run_time_limit(seconds, name)` (the runner
  wraps each segment in it) an outage is given up when the run's time would run out, even
  before the outage timeout; the resumed run then stops at that limit.
- What is retried is one statement (autocommit) or one whole transaction (`transact`),
  both written to be repeatable: upserts, updates to fixed values, inserts keyed by ids
  chosen before the first attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg

from enduro.errors import ConfigError, DatabaseUnreachable

__all__ = [
    "DatabaseUnreachable",
    "OutagePolicy",
    "is_unreachable_error",
    "outage_seconds_from_env",
    "run_time_limit",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_OUTAGE_SECONDS = 60.0
"""How long a run waits out an unreachable database before it pauses."""
OUTAGE_ENV = "ENDURO_DB_OUTAGE_TIMEOUT"
"""Environment variable for the outage timeout in seconds (the flag `--db-outage-timeout`
wins over it)."""
ATTEMPT_SECONDS = 5.0
"""Longest one attempt waits for a pooled connection before it counts as failed."""

# (monotonic time, limit name) by which the current run's time runs out; per task, so one
# process advancing several threads gives each its own.
_TIME_LIMIT: contextvars.ContextVar[tuple[float, str] | None] = contextvars.ContextVar(
    "enduro_outage_time_limit", default=None
)


@contextlib.contextmanager
def run_time_limit(left: tuple[float, str] | None) -> Iterator[None]:
    """Within the block, stop waiting out an outage when the run's time is up.

    This holds for the tasks the block starts too; the run would stop then anyway.

    Args:
        left: seconds the run has left and the limit's name (`max_minutes`, `deadline`), as
            `budgets.limits.time_left` gives them; None for no time limit.
    """
    value = None if left is None else (time.monotonic() + max(0.0, left[0]), left[1])
    token = _TIME_LIMIT.set(value)
    try:
        yield
    finally:
        _TIME_LIMIT.reset(token)


# SQLite primary result codes (sqlite3.h): the database file is locked by another
# connection (BUSY) or a table is locked within this one (LOCKED).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def is_unreachable_error(exc: BaseException) -> bool:
    """True for an error that means "the database did not answer", worth retrying.

    Args:
        exc: an exception raised by psycopg, psycopg_pool, sqlite3 or aiosqlite.

    Returns:
        True for psycopg's OperationalError family (connection refused, closed or
        terminated, pool timeout; query errors such as a syntax error are other classes)
        and for SQLite's busy / locked errors; False for everything else.
    """
    if isinstance(exc, psycopg.OperationalError):
        return True
    if isinstance(exc, psycopg.InterfaceError):
        # "the connection is closed", raised when a statement meets a dead connection.
        return "closed" in str(exc).lower()
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    return False


def outage_seconds_from_env(default: float = DEFAULT_OUTAGE_SECONDS) -> float:
    """`ENDURO_DB_OUTAGE_TIMEOUT` in seconds, or `default` when unset.

    Raises:
        ConfigError: the variable is set but is not a number >= 0.
    """
    raw = os.environ.get(OUTAGE_ENV, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{OUTAGE_ENV}={raw!r} is not a number of seconds >= 0, e.g. 60")
    return value


@dataclass
class OutagePolicy:
    """How long, and how, database calls wait out an outage (one per open database).

    Attributes:
        timeout: seconds an outage may last before calls raise `DatabaseUnreachable`.
        initial: first backoff delay in seconds; doubles per failure up to `max_delay`,
            with jitter (half to full delay).
        max_delay: the longest sleep between two attempts, in seconds.
    """

    timeout: float = DEFAULT_OUTAGE_SECONDS
    initial: float = 0.2
    max_delay: float = 5.0
    _down_since: float | None = field(default=None, repr=False)
    _last_error: str = field(default="", repr=False)

    @property
    def attempt_seconds(self) -> float:
        """How long one attempt may wait for a pooled connection, in seconds.

        Short once the outage has outlasted the timeout, so a run that gave up is not slow to say
        so.
        """
        down = self.down_for
        if down is not None and down >= self.timeout:
            return 1.0
        seconds = min(ATTEMPT_SECONDS, self.timeout)
        limit = _TIME_LIMIT.get()
        if limit is not None:
            seconds = min(seconds, limit[0] - time.monotonic())
        return max(0.5, seconds)

    @property
    def down_for(self) -> float | None:
        """Seconds since the current outage began, None while the database answers."""
        return None if self._down_since is None else time.monotonic() - self._down_since

    async def call(self, op: Callable[[], Awaitable[T]], what: str = "database call") -> T:
        """Run `op` (one statement or one transaction), retrying while unreachable.

        Args:
            op: makes one attempt; called again after each retryable failure, so it must be
                repeatable.
            what: names the call in log lines.

        Returns:
            What `op` returned on its first successful attempt.

        Raises:
            DatabaseUnreachable: the outage has lasted longer than `timeout`.
            Exception: whatever `op` raised that is not an outage (see
                `is_unreachable_error`), at once.
        """
        failures = 0
        while True:
            began = time.monotonic()
            try:
                result = await op()
            except Exception as exc:
                if not is_unreachable_error(exc):
                    raise
                failures += 1
                delay = self._failed(exc, what, failures, began)
                await asyncio.sleep(delay)
                continue
            if self._down_since is not None:
                log.warning("database reachable again after %.1fs", self.down_for or 0.0)
                self._down_since = None
            return result

    def _failed(self, exc: Exception, what: str, failures: int, began: float) -> float:
        """Record a failed attempt (begun at monotonic time `began`).

        Returns the delay before the next one, or raises when the outage has lasted too long.
        """
        now = time.monotonic()
        if self._down_since is None:
            # The outage began no later than the attempt that first saw it (which may have
            # waited for a connection for a while).
            self._down_since = began
        self._last_error = f"{type(exc).__name__}: {exc}".strip()[:300]
        waited = now - self._down_since
        left = self.timeout - waited
        limit = _TIME_LIMIT.get()
        if limit is not None and limit[0] - now < left:
            left = limit[0] - now
            if left <= 0:
                detail = f"{self._last_error}; the run's {limit[1]} ran out meanwhile"
                raise DatabaseUnreachable(detail, waited, self.timeout) from exc
        if left <= 0:
            raise DatabaseUnreachable(self._last_error, waited, self.timeout) from exc
        delay = min(self.max_delay, self.initial * 2.0 ** (failures - 1))
        delay = min(left, delay * random.uniform(0.5, 1.0))
        log.warning(
            "%s: database unreachable for %.1fs (%s); retry in %.1fs, giving up after %gs",
            what,
            waited,
            self._last_error,
            delay,
            self.timeout,
        )
        return delay
