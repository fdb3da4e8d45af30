"""What a failed model call means: a registry of provider-error classifiers.

A classifier looks at one exception raised by a chat model and says how the budget
middleware treats the attempt (`Failure`): retry after a rate limit, retry a transient
fault, or stop the run with a `stop_reason` that says what to fix; and whether the provider
may have billed it (then its reservation stays charged). It returns None for an exception it
does not know, and the next classifier is asked; an exception no classifier knows propagates
(the node fails, its reservation stays charged).

Built in: OpenAI's SDK errors (every OpenAI-compatible server, through ChatOpenAI),
transport errors of httpx / httpx2 (connection resets, cut streams), and a client used under
an event loop that is closed (`model_loop_bound`). A chat model of another
provider gets its errors understood with `register_error_classifier`; classifiers
registered later are asked first, so a user's can refine the built-in ones.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from enduro._redact import redact
from enduro._retry_after import retry_after_of
from enduro.errors import ProviderStop, RunStop, StopReason

FailureKind = Literal["rate_limit", "transient", "fatal"]


@dataclass(frozen=True)
class Failure:
    """How the budget middleware treats one failed attempt."""

    kind: FailureKind
    """`rate_limit` and `transient` are retried with backoff; `fatal` stops the run."""
    billed: bool
    """Whether the provider may have billed it (then the reservation stays charged)."""
    detail: str
    """What happened, redacted and short, for logs and the ledger row."""
    retry_after: float | None = None
    """Seconds the provider asked to wait before the next attempt, if it said."""
    stop: RunStop | None = None
    """For `fatal`: the stop the run ends with (its `stop_reason` says what to fix)."""


ErrorClassifier = Callable[[BaseException, str], Failure | None]
"""`(exception, thread_id) -> Failure | None`; the thread id is for the resume hint."""

_CLASSIFIERS: list[ErrorClassifier] = []


def register_error_classifier(classifier: ErrorClassifier) -> None:
    """Teach the budget middleware another chat model's errors.

    Args:
        classifier: `(exception, thread_id) -> Failure | None`, returning None for
            exceptions it does not know. Asked before the classifiers registered earlier
            and before the built-in ones.
    """
    _CLASSIFIERS.insert(0, classifier)


def classify(exc: BaseException, thread_id: str) -> Failure | None:
    """What a failed attempt means, or None when no classifier knows `exc`."""
    for classifier in (*_CLASSIFIERS, classify_closed_loop, classify_openai, classify_transport):
        failure = classifier(exc, thread_id)
        if failure is not None:
            return failure
    return None


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception, redacted (provider text may echo a key) and short."""
    return redact(f"{type(exc).__name__}: {exc}")[:400]


def classify_closed_loop(exc: BaseException, thread_id: str) -> Failure | None:
    """Classify a call that used connections of an event loop that is closed.

    What a model holding an SDK's process-wide cached HTTP client raises in a worker's
    second `asyncio.run` (enduro rebinds the clients it can see, `enduro.models`; a client
    an SDK creates lazily on first use it cannot). Nothing reached the provider; retrying
    cannot help, so the run stops and says how to build the model instead.
    """
    cause: BaseException | None = exc
    for _ in range(4):  # the SDK may wrap it (openai: APIConnectionError from it)
        if cause is None:
            return None
        if isinstance(cause, RuntimeError) and "Event loop is closed" in str(cause):
            break
        cause = cause.__cause__ or cause.__context__
    else:
        return None
    reason = StopReason.MODEL_LOOP_BOUND.explain(
        "the chat model reused an HTTP client opened under an event loop that is closed "
        "(its SDK caches one per process). Build the model and its client in a factory, "
        "model=lambda context: ChatFoo(..., http_async_client=httpx.AsyncClient()), or "
        "teach enduro to rebuild it with enduro.models.register_loop_binder; then "
        f"{resume_hint(thread_id)}"
    )
    return Failure("fatal", False, describe(exc), stop=RunStop(reason))


def classify_transport(exc: BaseException, thread_id: str) -> Failure | None:
    """Classify httpx / httpx2 connection resets, timeouts and cut streams.

    Transient, and possibly billed (the answer may have been generated before the cut).
    """
    kinds = tuple(
        kind
        for kind in (
            getattr(sys.modules.get("httpx"), "TransportError", None),
            getattr(sys.modules.get("httpx2"), "TransportError", None),
        )
        if isinstance(kind, type)
    )
    if kinds and isinstance(exc, kinds):
        return Failure("transient", True, describe(exc))
    return None


def _code(body: object, exc: Any) -> str:
    body = body if isinstance(body, Mapping) else {}
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    return str(getattr(exc, "code", None) or (error or {}).get("code") or "")


def classify_openai(exc: BaseException, thread_id: str) -> Failure | None:
    """OpenAI SDK errors (any OpenAI-compatible server through ChatOpenAI)."""
    openai = sys.modules.get("openai")
    if openai is None:
        return None  # nothing imported the SDK, so nothing raised its errors
    if isinstance(exc, openai.APIConnectionError):
        # Timeouts, resets, cut streams: the answer may have been generated and billed.
        return Failure("transient", True, describe(exc))
    if not isinstance(exc, openai.APIStatusError):
        return None
    status = exc.status_code
    what = redact(f"{type(exc).__name__}, HTTP {status}: {exc.message}")[:400]
    wait = retry_after_of(exc.response.headers)
    stop = _openai_stop(exc, status, what, resume_hint(thread_id))
    if stop is not None:
        return Failure("fatal", False, what, stop=stop)
    if status == 429:
        return Failure("rate_limit", False, what, retry_after=wait)
    if status >= 500 or status == 408:
        # The server may have generated (and billed) before failing: keep it charged.
        return Failure("transient", True, what, retry_after=wait)
    if status == 409:
        return Failure("transient", False, what, retry_after=wait)
    reason = StopReason.BAD_REQUEST.explain(
        f"the provider refused the request ({what}); {resume_hint(thread_id)} after fixing"
    )
    return Failure("fatal", False, what, stop=ProviderStop(reason))


def resume_hint(thread_id: str) -> str:
    """The command that resumes `thread_id`, quoted for a stop reason."""
    return f"`enduro resume {thread_id}`"


def _openai_stop(exc: Any, status: int, what: str, resume: str) -> ProviderStop | None:
    """The stop for an answer that retrying cannot fix, or None."""
    code = _code(exc.body, exc)
    # Only OpenAI's explicit code: other providers say "quota" for per-minute limits.
    if status == 429 and "insufficient_quota" in (code, str(getattr(exc, "type", ""))):
        reason = StopReason.INSUFFICIENT_QUOTA.explain(
            f"the provider says the account is out of credit or over "
            f"its quota ({what}). Add credit or raise the quota, then {resume}"
        )
        return ProviderStop(reason, status="paused")
    if status == 429:
        return None  # a rate limit: retried
    if status in (401, 403):
        reason = StopReason.INVALID_API_KEY.explain(
            f"the provider rejected the credentials ({what}). Set "
            f"OPENAI_API_KEY to a valid key for this endpoint, then {resume}"
        )
        return ProviderStop(reason)
    if "context_length" in code or "maximum context length" in exc.message.lower():
        reason = StopReason.CONTEXT_LENGTH_EXCEEDED.explain(
            f"the request is longer than the model's context "
            f"window ({what}). Resume with a longer-context model ({resume} --model …) "
            "or a lower max_output_tokens"
        )
        return ProviderStop(reason)
    if status == 404:
        reason = StopReason.MODEL_NOT_FOUND.explain(
            f"{what}. Check --model / ENDURO_MODEL, then {resume}"
        )
        return ProviderStop(reason)
    return None
