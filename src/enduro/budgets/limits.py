"""The limits of one thread, derived from its context.

Dollar caps with the finalization reserve, the time left, and the deadline's parsing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from enduro.budgets.pricing import usd_to_nano_floor
from enduro.errors import ConfigError

DEFAULT_FINAL_RESERVE_FRACTION = 0.05
"""Share of max_usd kept back for finish's summarising call unless the context says."""

_RELATIVE = re.compile(r"^\+?(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def final_reserve_usd(max_usd: float | None, configured: float | None) -> float:
    """Dollars kept back so that finish can pay for one summarising call."""
    if max_usd is None:
        return 0.0
    if configured is None:
        return max_usd * DEFAULT_FINAL_RESERVE_FRACTION
    return configured


def usd_cap_nano(max_usd: float | None, reserve_usd: float, *, final: bool) -> int | None:
    """The cap a reservation must fit under: every call but finish's leaves the reserve."""
    if max_usd is None:
        return None
    return usd_to_nano_floor(max_usd if final else max(0.0, max_usd - reserve_usd))


def parse_deadline(text: str, now: datetime | None = None) -> str:
    """Parse `--deadline` into ISO 8601 in UTC, as the context stores it.

    Accepted: ISO 8601 (`2026-01-31T18:00`, `…Z`, `…+02:00`; no zone = local time) or relative
    (`+90m`, `2h`, `1.5d`).
    """
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.strip())
    if match:
        when = now + timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        return when.astimezone(UTC).isoformat()
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"deadline {text!r} is neither ISO 8601 (e.g. 2026-01-31T18:00:00+00:00) nor "
            "relative (e.g. +90m, 2h, 1d)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as a person at a shell means it
    return when.astimezone(UTC).isoformat()


def deadline_epoch(deadline: str | None) -> float | None:
    """The stored deadline as epoch seconds (None when unset)."""
    if not deadline:
        return None
    try:
        when = datetime.fromisoformat(deadline.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"deadline {deadline!r} in the thread's context is not ISO 8601; set a new one "
            "with `enduro resume THREAD --deadline 2026-01-31T18:00:00+00:00`"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def time_left(
    *,
    max_minutes: float | None,
    active_seconds: float,
    deadline: float | None,
    now: float,
) -> tuple[float, str] | None:
    """Seconds left under the tighter time limit, and its name; None without time limits."""
    candidates: list[tuple[float, str]] = []
    if max_minutes is not None:
        candidates.append((max_minutes * 60 - active_seconds, "max_minutes"))
    if deadline is not None:
        candidates.append((deadline - now, "deadline"))
    return min(candidates) if candidates else None
