"""The metered model call: every model call of the graph goes through `metered_call`.

For each attempt: honour a pending Retry-After (kept in the database, so a resumed run
honours it too); stop if the time left cannot fit a call; reserve the call's worst case in
the ledger (refused: stop with the limit's name); call with a timeout no longer than the
time left; settle the reservation to the reported usage.

Provider errors are handled here rather than by LangGraph's RetryPolicy, which cannot read
Retry-After: 429 and 5xx are retried with backoff (Retry-After wins, however long, as long as
the time limits allow the wait); an exhausted quota, a bad key, a too-long context or any
other 4xx stops the run at once with a `stop_reason` that says what to fix. The SDK's own
retries are off (ChatOpenAI max_retries=0), so every attempt is a ledger row.

Database outages are waited out by the database's own retries (`checkpointing.outage`); an
answer whose settlement still cannot be written is kept on disk (`budgets.spool`) and used,
and settled, when the resumed run makes the same request, so it is paid once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from enduro._redact import redact
from enduro._retry_after import retry_after_of
from enduro.budgets.decision import MIN_CALL_SECONDS
from enduro.budgets.ledger import Caps, Ledger
from enduro.budgets.limits import usd_cap_nano
from enduro.budgets.pricing import (
    Price,
    TokenCounts,
    nano_to_usd,
    resolve_price,
    to_nano,
    unknown_price_message,
)
from enduro.budgets.service import CallScope
from enduro.budgets.spool import AnswerSpool, HeldAnswer, ReplayModel, request_key
from enduro.budgets.tokens import input_token_bound, output_token_bound
from enduro.errors import (
    BudgetStop,
    DatabaseUnreachable,
    PricingUnknown,
    ProviderStop,
    RunStop,
    StopReason,
)

log = logging.getLogger(__name__)

MIN_SUMMARY_TOKENS = 256
"""finish shrinks its max_tokens to what the money left affords, but not below this."""


@dataclass(frozen=True)
class Backoff:
    """Retry schedule for 429 and transient (5xx, connection, timeout) failures."""

    initial: float = 1.0
    factor: float = 2.0
    max_delay: float = 60.0
    rate_limit_attempts: int = 10
    transient_attempts: int = 6

    def delay(self, failures: int) -> float:
        base = min(self.max_delay, self.initial * self.factor ** max(0, failures - 1))
        return base * random.uniform(0.5, 1.0)


BACKOFF = Backoff()


@dataclass(frozen=True)
class Failure:
    """How the seam treats one failed attempt."""

    kind: str
    """`rate_limit`, `transient`, or `fatal`."""
    billed: bool
    """Whether the provider may have billed it (then the reservation stays charged)."""
    detail: str
    retry_after: float | None = None
    stop: RunStop | None = None


@dataclass(frozen=True)
class Metered:
    """A call's result, the AIMessage that carried its usage, and what it cost."""

    result: Any
    raw: AIMessage | None
    usd: float


Invoke = Callable[[BaseChatModel], Awaitable[tuple[Any, AIMessage | None]]]


def _code(exc: openai.APIStatusError) -> str:
    body = exc.body if isinstance(exc.body, Mapping) else {}
    error = body.get("error") if isinstance(body.get("error"), Mapping) else body
    return str(getattr(exc, "code", None) or (error or {}).get("code") or "")


def classify(exc: BaseException, thread_id: str) -> Failure | None:
    """What a failed attempt means, or None for an error the seam does not know."""
    resume = f"`enduro resume {thread_id}`"
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        code = _code(exc)
        what = redact(f"{type(exc).__name__}, HTTP {status}: {exc.message}")[:400]
        # Only OpenAI's explicit code: other providers say "quota" for per-minute limits.
        if status == 429 and "insufficient_quota" in (code, str(getattr(exc, "type", ""))):
            reason = StopReason.INSUFFICIENT_QUOTA.explain(
                f"the provider says the account is out of credit or over "
                f"its quota ({what}). Add credit or raise the quota, then {resume}"
            )
            return Failure("fatal", False, what, stop=ProviderStop(reason, status="paused"))
        if status == 429:
            return Failure(
                "rate_limit", False, what, retry_after=retry_after_of(exc.response.headers)
            )
        if status in (401, 403):
            reason = StopReason.INVALID_API_KEY.explain(
                f"the provider rejected the credentials ({what}). Set "
                f"OPENAI_API_KEY to a valid key for this endpoint, then {resume}"
            )
            return Failure("fatal", False, what, stop=ProviderStop(reason))
        if "context_length" in code or "maximum context length" in exc.message.lower():
            reason = StopReason.CONTEXT_LENGTH_EXCEEDED.explain(
                f"the request is longer than the model's context "
                f"window ({what}). Resume with a longer-context model ({resume} --model …) "
                "or a lower max_output_tokens"
            )
            return Failure("fatal", False, what, stop=ProviderStop(reason))
        if status == 404:
            reason = StopReason.MODEL_NOT_FOUND.explain(
                f"{what}. Check --model / ENDURO_MODEL, then {resume}"
            )
            return Failure("fatal", False, what, stop=ProviderStop(reason))
        if status >= 500 or status == 408:
            # The server may have generated (and billed) before failing: keep it charged.
            return Failure(
                "transient", True, what, retry_after=retry_after_of(exc.response.headers)
            )
        if status == 409:
            return Failure(
                "transient", False, what, retry_after=retry_after_of(exc.response.headers)
            )
        reason = StopReason.BAD_REQUEST.explain(
            f"the provider refused the request ({what}); {resume} after fixing"
        )
        return Failure("fatal", False, what, stop=ProviderStop(reason))
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
        # Timeouts, resets, cut streams: the answer may have been generated and billed.
        return Failure("transient", True, redact(f"{type(exc).__name__}: {exc}")[:400])
    return None


def model_name_of(model: BaseChatModel, default: str) -> str:
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return default


def token_counts(message: AIMessage) -> TokenCounts | None:
    """The usage the provider reported on `message`, or None when it reported none."""
    meta = message.usage_metadata
    if not meta:
        return None
    inputs: Mapping[str, Any] = meta.get("input_token_details") or {}
    outputs: Mapping[str, Any] = meta.get("output_token_details") or {}
    return TokenCounts(
        input=int(meta.get("input_tokens") or 0),
        output=int(meta.get("output_tokens") or 0),
        cached_input=int(inputs.get("cache_read") or 0),
        cache_write=int(inputs.get("cache_creation") or 0),
        reasoning=int(outputs.get("reasoning") or 0),
    )


async def _durable_wait(scope: CallScope, ledger: Ledger) -> None:
    """Sleep out a Retry-After recorded before (by this process or one that died)."""
    not_before = await ledger.not_before(scope.thread_id)
    wait = (not_before or 0) - time.time()
    if wait <= 0:
        return
    left = await scope.budget.time_left(scope.context, scope.thread_id)
    if left is not None and wait > left[0] - MIN_CALL_SECONDS:
        # The provider's wait outlasts the time limit: stop now rather than sleep in vain.
        log.warning("provider asks to wait %.0fs, more than the %.0fs left", wait, left[0])
        raise BudgetStop(left[1])
    log.info("waiting %.1fs before the next model call (provider's Retry-After)", wait)
    await asyncio.sleep(wait)


def _worst(price: Price | None, input_tokens: int, output_tokens: int) -> int:
    return to_nano(price.worst_case(input_tokens, output_tokens)) if price is not None else 0


async def _fit_output(
    scope: CallScope, ledger: Ledger, model: BaseChatModel, price: Price, in_bound: int, out: int
) -> tuple[BaseChatModel, int]:
    """finish only: lower max_tokens until the summary fits in the money left, so a run
    stopped by max_usd still gets a written summary when its reserve is small."""
    cap = usd_cap_nano(scope.context.max_usd, scope.reserve_usd, final=True)
    if cap is None or "max_tokens" not in getattr(type(model), "model_fields", {}):
        return model, out
    headroom = cap - (await ledger.totals(scope.thread_id)).charged_nusd
    if _worst(price, in_bound, out) <= headroom or out <= MIN_SUMMARY_TOKENS:
        return model, out
    if _worst(price, in_bound, MIN_SUMMARY_TOKENS) > headroom:
        return model, out  # cannot fit at all: the reservation refuses, finish goes without
    lo, hi = MIN_SUMMARY_TOKENS, out
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _worst(price, in_bound, mid) <= headroom else (lo, mid)
    return model.model_copy(update={"max_tokens": lo}), lo


async def metered_call(
    scope: CallScope,
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    tool_schemas: Sequence[Mapping[str, Any]],
    invoke: Invoke,
) -> Metered:
    """Make one model call within the thread's budget (see the module docstring)."""
    context = scope.context
    ledger = await scope.budget.ledger()
    name = model_name_of(model, context.model)
    price = resolve_price(name, context.prices)
    if price is None and context.max_usd is not None:
        raise PricingUnknown(StopReason.UNKNOWN_PRICE.explain(unknown_price_message(name)))
    out_bound = output_token_bound(model)
    if out_bound is None:
        if context.max_usd is not None or context.max_tokens is not None:
            raise RunStop(
                StopReason.UNBOUNDED_OUTPUT.explain(
                    f"model {name!r} has no max_tokens, so no call has a worst "
                    "case to reserve; build it with max_tokens=N"
                )
            )
        out_bound = 0
    in_bound = input_token_bound(messages, tool_schemas)
    if scope.final and price is not None:
        model, out_bound = await _fit_output(scope, ledger, model, price, in_bound, out_bound)
    caps = Caps(
        usd_nano=usd_cap_nano(context.max_usd, scope.reserve_usd, final=scope.final),
        tokens=context.max_tokens,
        llm_calls=context.max_llm_calls,
    )
    spool = AnswerSpool(context.workspace, scope.thread_id)
    key = request_key(name, messages, tool_schemas)
    held = await spool.take(key)
    if held is not None:
        return await _use_held(spool, key, held, ledger, price, invoke)
    failures = 0
    while True:
        await _durable_wait(scope, ledger)
        left = await scope.budget.time_left(context, scope.thread_id)
        if left is not None and left[0] < MIN_CALL_SECONDS:
            raise BudgetStop(left[1])
        worst = _worst(price, in_bound, out_bound)
        call_id = await ledger.reserve(
            thread_id=scope.thread_id,
            node=scope.node,
            model=name,
            usd_nano=worst,
            tokens=in_bound + out_bound,
            caps=caps,
            priced=price is not None,
        )
        timeout = context.call_timeout_seconds
        if left is not None:
            timeout = min(timeout, left[0])
        try:
            async with asyncio.timeout(timeout):
                result, raw = await invoke(model)
        except TimeoutError:
            await ledger.mark_lost(call_id, f"timed out after {timeout:.1f}s")
            if left is not None and timeout >= left[0]:
                raise BudgetStop(left[1]) from None
            failure = Failure("transient", True, f"no answer within {timeout:.0f}s")
        except Exception as exc:
            known = classify(exc, scope.thread_id)
            if known is None or known.billed:
                await ledger.mark_lost(call_id, redact(f"{type(exc).__name__}: {exc}"))
            else:
                await ledger.release(call_id, known.detail)
            if known is None:
                raise
            if known.stop is not None:
                raise known.stop from exc
            failure = known
        else:
            try:
                usd = await _settle(ledger, call_id, raw, price, worst)
            except DatabaseUnreachable:
                # Answered (and billed) but not recorded: keep the answer for the resumed
                # run rather than pay for it again.
                if raw is not None:
                    await spool.hold(key, HeldAnswer(call_id, worst, raw))
                raise
            return Metered(result, raw, usd)
        failures += 1
        attempts = (
            BACKOFF.rate_limit_attempts
            if failure.kind == "rate_limit"
            else BACKOFF.transient_attempts
        )
        if failures >= attempts:
            code = (
                StopReason.RATE_LIMITED
                if failure.kind == "rate_limit"
                else StopReason.PROVIDER_UNAVAILABLE
            )
            raise ProviderStop(
                f"{code.value}: {failures} attempts failed, the last with {failure.detail}. "
                f"Resume later with `enduro resume {scope.thread_id}`",
                status="paused",
            )
        delay = failure.retry_after if failure.retry_after is not None else BACKOFF.delay(failures)
        log.warning(
            "model call failed (%s); retry %d/%d in %.1fs",
            failure.detail,
            failures,
            attempts - 1,
            delay,
        )
        await ledger.set_not_before(scope.thread_id, time.time() + delay)


async def _use_held(
    spool: AnswerSpool,
    key: str,
    held: HeldAnswer,
    ledger: Ledger,
    price: Price | None,
    invoke: Invoke,
) -> Metered:
    """The answer this request got while the database was unreachable (`budgets.spool`):
    settled now on its original reservation, and parsed as the provider's answer would be."""
    log.info("using the answer to call %s kept while the database was away", held.call_id)
    result, raw = await invoke(ReplayModel(message=held.message))
    usd = await _settle(ledger, held.call_id, held.message, price, held.worst_nano)
    await spool.forget(key)
    return Metered(result, raw, usd)


async def _settle(
    ledger: Ledger, call_id: str, raw: AIMessage | None, price: Price | None, worst: int
) -> float:
    counts = token_counts(raw) if raw is not None else None
    if counts is None:
        # No usage reported: the provider billed something we cannot see.
        await ledger.mark_lost(call_id, "no usage reported")
        return nano_to_usd(worst)
    usd_nano = to_nano(price.cost(counts)) if price is not None else 0
    if usd_nano > worst:
        log.warning(
            "reported usage (%d in, %d out) costs more than the reserved worst case; "
            "recording what was reported",
            counts.input,
            counts.output,
        )
    await ledger.settle(call_id, usd_nano=usd_nano, counts=counts)
    return nano_to_usd(usd_nano)
