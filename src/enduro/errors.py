"""Every error enduro raises on purpose, under one root, and the codes scripts read.

Invariants:
- Every exception enduro raises for a reason it understands derives from `EnduroError`, so
  `except enduro.errors.EnduroError` catches all of them and nothing else.
- Each class carries an `ErrorCode`: the `code` of the CLI's `{"error": {"code",
  "message"}}` JSON (with `--json`) and the exit code that goes with it. The codes' string
  values are a contract: extend the enum, never rename a member's value.
- `StopReason` names the causes that end a run segment and are written into the status
  JSON's `stop_reason`. The string values are exactly the ones written before the enum
  existed (the status JSON is a contract); a provider stop is written as
  `"<code>: <what to fix>"`, so `StopReason.of(text)` recovers the code from the prefix.

This module imports nothing of enduro and nothing outside the standard library: the
storage layer, the CLI's fast paths and user code can all import it at no cost.
"""

from __future__ import annotations

import enum
from typing import Any

__all__ = [
    "BudgetStop",
    "ConfigError",
    "DatabaseUnavailable",
    "DatabaseUnreachable",
    "EnduroError",
    "ErrorCode",
    "NotWaiting",
    "PricingUnknown",
    "ProviderStop",
    "RunStop",
    "StopReason",
    "ThreadBusy",
    "UnknownThread",
]


class ErrorCode(enum.StrEnum):
    """The `code` of `{"error": {"code", "message"}}`: what kind of failure, for scripts."""

    USAGE = "usage"
    """The command line itself is wrong (argparse refused it). Exit 2."""
    CONFIG = "config"
    """A flag, an environment variable or a stored setting is invalid. Exit 2."""
    UNKNOWN_THREAD = "unknown_thread"
    """No thread with that id or name in the database. Exit 2."""
    THREAD_BUSY = "thread_busy"
    """Another live process holds the thread's lease. Exit 2."""
    DATABASE_UNAVAILABLE = "database_unavailable"
    """The database could not be reached or opened. Exit 2 (nothing ran)."""
    INTERRUPTED = "interrupted"
    """SIGINT or SIGTERM stopped the command before it had a result. Exit 4."""
    NOT_WAITING = "not_waiting"
    """An answer (`approve`, `reject`, `answer`) that fits no pending interrupt of the
    thread: none pending, an unknown `--id`, several pending and no `--id`, or the wrong
    command for the interrupt's kind. Exit 2 (nothing ran)."""
    INTERNAL = "internal"
    """An error enduro did not anticipate; the message names its type. Exit 1."""


class StopReason(enum.StrEnum):
    """Why a run segment stopped: the status JSON's `stop_reason` (or its `code:` prefix).

    Limit names are the option names (`max_usd` is `--max-usd`). A budget pool's stop is
    `pool:NAME` (see `pool`). Provider stops are written `"<code>: <what to fix>"`.
    """

    MAX_USD = "max_usd"
    MAX_MINUTES = "max_minutes"
    MAX_ITERATIONS = "max_iterations"
    MAX_LLM_CALLS = "max_llm_calls"
    MAX_TOOL_CALLS = "max_tool_calls"
    MAX_TOKENS = "max_tokens"
    DEADLINE = "deadline"
    SIGNAL = "signal"
    """SIGINT/SIGTERM: the run drained at a step boundary (status `paused`)."""
    CANCEL = "cancel"
    """`enduro cancel` (status `cancelled`)."""
    CRASHED = "crashed"
    """The process holding the lease stopped heartbeating (status shown `paused`)."""
    INSUFFICIENT_QUOTA = "insufficient_quota"
    INVALID_API_KEY = "invalid_api_key"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    MODEL_NOT_FOUND = "model_not_found"
    BAD_REQUEST = "bad_request"
    RATE_LIMITED = "rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    UNKNOWN_PRICE = "unknown_price"
    UNBOUNDED_OUTPUT = "unbounded_output"
    DATABASE_UNREACHABLE = "database_unreachable"
    """The database stayed unreachable longer than --db-outage-timeout (status `paused`)."""
    MODEL_LOOP_BOUND = "model_loop_bound"
    """The chat model used an HTTP client of an event loop that is closed (a worker running
    jobs under successive loops); the text says how to build the model instead."""

    def explain(self, detail: str) -> str:
        """The `stop_reason` text of a stop that needs explaining: `"<code>: <detail>"`.

        Args:
            detail: what happened and what to do about it (already redacted).

        Returns:
            The string written into state and the status JSON.
        """
        return f"{self.value}: {detail}"

    @classmethod
    def of(cls, stop_reason: str | None) -> StopReason | None:
        """The code of a `stop_reason` string, or None (a pool, an error text, no stop).

        Args:
            stop_reason: a status JSON `stop_reason` such as `max_usd` or
                `insufficient_quota: the provider says …`.

        Returns:
            The member whose value is the text or its `code:` prefix, else None.
        """
        if not stop_reason:
            return None
        head = stop_reason.partition(":")[0].strip()
        try:
            return cls(head)
        except ValueError:
            return None


POOL_PREFIX = "pool:"
"""`stop_reason` of a run stopped by budget pool NAME is `pool:NAME`."""


def pool_stop(name: str) -> str:
    """The `stop_reason` of a run stopped by budget pool `name` (`pool:NAME`)."""
    return POOL_PREFIX + name


class EnduroError(Exception):
    """Root of every error enduro raises on purpose.

    Attributes:
        code: the `ErrorCode` reported in `{"error": {"code", "message"}}`.
        exit_code: the CLI's exit status for it.
    """

    code: ErrorCode = ErrorCode.INTERNAL
    exit_code: int = 1

    def to_json(self) -> dict[str, Any]:
        """The `{"error": {"code", "message"}}` object the CLI prints with `--json`."""
        return error_json(self.code, str(self))


def error_json(code: ErrorCode | str, message: str) -> dict[str, Any]:
    """`{"error": {"code": code, "message": message}}`, the JSON of an outcome without a thread.

    Args:
        code: an `ErrorCode` (or its string value).
        message: the same text the CLI writes to stderr.
    """
    return {"error": {"code": str(code), "message": message}}


class ConfigError(EnduroError, ValueError):
    """A usage or configuration error: the CLI exits 2 with this text.

    A `ValueError` too, for callers that caught it as one before this hierarchy existed.
    """

    code = ErrorCode.CONFIG
    exit_code = 2


class UnknownThread(ConfigError):
    """No thread with this id or name: the message says where enduro looked."""

    code = ErrorCode.UNKNOWN_THREAD


class ThreadBusy(ConfigError):
    """Another live process holds the thread's lease right now."""

    code = ErrorCode.THREAD_BUSY


class NotWaiting(ConfigError):
    """The answer fits no pending interrupt: the message lists the pending ones."""

    code = ErrorCode.NOT_WAITING


class DatabaseUnavailable(ConfigError):
    """The database could not be opened or reached (wrong URL, server down, no file)."""

    code = ErrorCode.DATABASE_UNAVAILABLE


class DatabaseUnreachable(EnduroError):
    """The database did not answer for longer than the outage timeout.

    Raised during a command that had opened it (`enduro.storage.outage`). A run ends `paused` (exit
    4) with `stop_reason` `database_unreachable: …`; the last checkpoint holds.

    Args:
        detail: the last error seen, e.g. `PoolTimeout: couldn't get a connection after
            5.00 sec`.
        waited: seconds since the outage began.
        timeout: the outage timeout in seconds (`--db-outage-timeout`).
    """

    code = ErrorCode.DATABASE_UNAVAILABLE
    exit_code = 4

    def __init__(self, detail: str, waited: float, timeout: float) -> None:
        self.detail = detail
        self.waited = waited
        self.timeout = timeout
        super().__init__(self.stop_reason)

    @property
    def stop_reason(self) -> str:
        """The `stop_reason` of a run this outage paused: `database_unreachable: …`."""
        return StopReason.DATABASE_UNREACHABLE.explain(
            f"no answer from the database for {self.waited:.0f}s (--db-outage-timeout "
            f"{self.timeout:g}); last error: {self.detail}. The last checkpoint holds: resume "
            "once the database is back"
        )


class RunStop(EnduroError):
    """Stop the run gracefully with `status` and `stop_reason` (never a crash).

    Nodes raise it; the node wrapper turns it into a state update that routes to finish.

    Args:
        stop_reason: the status JSON's `stop_reason` (a `StopReason` value, or
            `StopReason.explain(...)` text).
        status: overrides the class's terminal status (e.g. `paused` for a stop that
            resuming later can fix).
    """

    status: str = "failed"

    def __init__(self, stop_reason: str, *, status: str | None = None) -> None:
        # A plain str, never the enum member: state is serialized into checkpoints, and
        # an enum there would tie every stored checkpoint to this module's class.
        stop_reason = str(stop_reason)
        super().__init__(stop_reason)
        self.stop_reason = stop_reason
        if status is not None:
            self.status = status

    @property
    def reason(self) -> StopReason | None:
        """The `StopReason` code of `stop_reason`, when it has one."""
        return StopReason.of(self.stop_reason)

    def update(self) -> dict[str, Any]:
        """The state update that routes the run to finish: `{"status", "stop_reason"}`."""
        return {"status": self.status, "stop_reason": self.stop_reason}


class BudgetStop(RunStop):
    """A limit would be passed: `stop_reason` is the limit's name (e.g. `max_usd`)."""

    status = "budget_exhausted"


class ProviderStop(RunStop):
    """The provider refused in a way retrying cannot fix, or past the retry budget.

    Such refusals are quota, key or context length. `stop_reason` is `"<code>: <what to fix>"`.
    """


class PricingUnknown(RunStop):
    """A dollar limit is set but the model has no known price: fail closed."""
