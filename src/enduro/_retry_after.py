"""The one `Retry-After` parser of enduro, for model providers and webhook receivers alike.

RFC 9110 §10.2.3 allows delta-seconds or an HTTP date; OpenAI-style servers also send
`retry-after-ms`, which is more precise and so wins. A value that parses to the past is
0 (retry now), junk is None (the caller's own backoff applies). Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after", "retry_after_of"]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """One `Retry-After` header value as seconds to wait.

    Args:
        value: delta-seconds (`"120"`, `"1.5"`) or an HTTP date
            (`"Wed, 21 Oct 2026 07:28:00 GMT"`).
        now: the time an HTTP date is measured from (default: the current UTC time).

    Returns:
        Seconds, never negative; None when the value is absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def retry_after_of(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from a response's headers: `retry-after-ms`, else `retry-after`.

    Args:
        headers: response headers; lookups use lower-case names, so pass a
            case-insensitive mapping (httpx's `Headers`) or lower-cased keys.
        now: see `parse_retry_after`.

    Returns:
        Seconds, never negative; None when neither header holds a usable value.
    """
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    return parse_retry_after(headers.get("retry-after"), now)


def _seconds(value: str | None) -> float | None:
    """A finite, non-negative number from `value`, else None (absent, junk, nan, inf)."""
    try:
        number = float((value or "").strip())
    except ValueError:
        return None
    return max(number, 0.0) if math.isfinite(number) else None
