"""The one secret-redaction rule of enduro, for every message, log line, event and stored text.

Invariant: no API key, bearer token, `whsec_` signing secret, password or token-like query
value reaches a log line, a checkpoint, a ledger row, an event or the terminal. Every
place that shows text that may carry one (a provider's error message, a database or
webhook URL, an exception's text) passes it through `redact` first, so there is one rule
to review and to extend.

What is masked, and why:
- `sk-…`, `rk-…`, `pk-…` keys (OpenAI and most OpenAI-compatible servers; providers echo
  part of the key in 401 messages): the prefix is kept so the message still says which kind.
- `whsec_…` Standard Webhooks secrets, and `Bearer …` tokens.
- `user:password@` in any URL (database and webhook URLs carry credentials there).
- The query string of http(s) URLs (`?token=…` is how many receivers authenticate), and
  `name=value` pairs whose name says key, token, secret, password or signature elsewhere.

Standard library only: imported by the storage layer and the CLI's fast paths.
"""

from __future__ import annotations

import re
from typing import overload

__all__ = ["redact"]

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_***"),
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_\-*]{4,}"), r"\1-***"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]+"), r"\1 ***"),
    # Before the key=value rule, so a URL's whole query goes, not only its secret pairs.
    (re.compile(r"(?i)\b(https?://[^\s?#'\"]*)\?[^\s#'\"]*"), r"\1?…"),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|passwd|sig)=[^&\s'\"]+"
        ),
        r"\1=***",
    ),
    (re.compile(r"(?<=://)[^/@\s'\"]+@"), "***@"),
)


@overload
def redact(text: str, limit: int | None = None) -> str: ...
@overload
def redact(text: None, limit: int | None = None) -> None: ...


def redact(text: str | None, limit: int | None = None) -> str | None:
    """`text` with every secret masked (see the module docstring for the rules).

    Args:
        text: any message, URL or exception text; None passes through (an absent
            `stop_reason`, say).
        limit: cap on the result's length in characters; longer text is cut and ends
            with `…`. None keeps the whole text.

    Returns:
        The redacted text, e.g. `postgresql://***@db/x` for
        `postgresql://app:hunter2@db/x`.
    """
    if text is None:
        return None
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text
