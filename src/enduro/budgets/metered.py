"""The budget middleware: every model call of the graph is made within the thread's limits.

`BudgetMiddleware.awrap_model_call(request, handler)` (the seam of `enduro.model_call`), for
each attempt: honour a pending Retry-After (kept in the database, so a resumed run honours
it too); stop if the time left cannot fit a call; reserve the call's worst case in the
ledger (refused: stop with the limit's name); call `handler` with a timeout no longer than
the time left; settle the reservation to the reported usage.

Provider errors are handled here rather than by LangGraph's RetryPolicy, which cannot read
Retry-After. What an error means comes from the classifier registry
(`enduro.budgets.provider_errors`): rate limits and transient faults are retried with backoff
(Retry-After wins, however long, as long as the time limits allow the wait); an exhausted
quota, a bad key, a too-long context or any other refusal stops the run at once with a
`stop_reason` that says what to fix. The SDK's own retries are off (ChatOpenAI
max_retries=0), so every attempt is a ledger row.

Database outages are waited out by the database's own retries (`storage.outage`); an
answer whose settlement still cannot be written is kept on disk (`budgets.spool`) and used,
and settled, when the resumed run makes the same request, so it is paid once.

Invariant: no call is made without a reservation of its worst case that the ledger accepted
under the thread's limits; a reservation ends settled, lost (kept charged) or released.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from enduro.budgets.decision import MIN_CALL_SECONDS
from enduro.budgets.ledger import Caps, Ledger
from enduro.budgets.limits import final_reserve_usd, usd_cap_nano
from enduro.budgets.pricing import Price, nano_to_usd, resolve_price, unknown_price_message
from enduro.budgets.provider_errors import Failure, classify, describe, resume_hint
from enduro.budgets.reservation import Reservation, reserve_call, worst_case_nano
from enduro.budgets.service import BudgetService
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
from enduro.model_call import ModelHandler, ModelRequest, ModelResponse
from enduro.models import model_name_of

log = logging.getLogger(__name__)

MIN_SUMMARY_TOKENS = 256
"""finish shrinks its max_tokens to what the money left affords, but not below this."""


@dataclass(frozen=True)
class Backoff:
    """Retry schedule for rate limits and transient (5xx, connection, timeout) failures."""

    initial: float = 1.0
    """Seconds before the first retry (before jitter)."""
    factor: float = 2.0
    max_delay: float = 60.0
    """Longest wait between attempts, in seconds, unless the provider asks for longer."""
    rate_limit_attempts: int = 10
    transient_attempts: int = 6

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failed attempts.

        Exponential, jittered between half and all of it.
        """
        base = min(self.max_delay, self.initial * self.factor ** max(0, failures - 1))
        return base * random.uniform(0.5, 1.0)


BACKOFF = Backoff()


@dataclass(frozen=True)
class _Plan:
    """What every attempt of one call reserves: fixed before the first attempt."""

    request: ModelRequest
    name: str
    price: Price | None
    input_tokens: int
    output_tokens: int
    caps: Caps
    spool: AnswerSpool
    """Where an answer whose settlement the database refused is kept for the resumed run."""
    key: str
    """The request's key in the spool."""


class BudgetMiddleware:
    """Reserve, call, settle and retry every model call within the thread's limits."""

    def __init__(self, budget: BudgetService) -> None:
        """Meter calls against `budget`: the graph's ledger, run clock and time limits."""
        self.budget = budget

    async def awrap_model_call(self, request: ModelRequest, handler: ModelHandler) -> ModelResponse:
        """Make `request` through `handler` within the budget (see the module docstring).

        Returns:
            The response, with `usd` set to what the ledger charged.

        Raises:
            BudgetStop: a limit would be passed (by the reservation, or by waiting).
            ProviderStop: the provider refused in a way retrying cannot fix, or kept failing.
            PricingUnknown: a dollar limit is set and the model has no price.
            RunStop: a limit is set and the model has no max_tokens to bound a call.
        """
        ledger = await self.budget.ledger()
        plan = await self._plan(request, ledger)
        held = await plan.spool.take(plan.key)
        if held is not None:
            return await _use_held(plan, held, ledger, handler)
        failures = 0
        while True:
            outcome = await self._attempt(plan, ledger, handler)
            if isinstance(outcome, ModelResponse):
                return outcome
            failures += 1
            await self._back_off(request.thread_id, ledger, outcome, failures)

    async def _plan(self, request: ModelRequest, ledger: Ledger) -> _Plan:
        context = request.context
        name = model_name_of(request.model, context.model)
        price = resolve_price(name, context.prices)
        if price is None and context.max_usd is not None:
            raise PricingUnknown(StopReason.UNKNOWN_PRICE.explain(unknown_price_message(name)))
        out_bound = output_token_bound(request.model)
        if out_bound is None:
            if context.max_usd is not None or context.max_tokens is not None:
                raise RunStop(
                    StopReason.UNBOUNDED_OUTPUT.explain(
                        f"model {name!r} has no max_tokens, so no call has a worst "
                        "case to reserve; build it with max_tokens=N"
                    )
                )
            out_bound = 0
        in_bound = input_token_bound(request.messages, request.tool_schemas())
        reserve = final_reserve_usd(context.max_usd, context.final_reserve_usd)
        if request.final and price is not None:
            model, out_bound = await _fit_output(request, ledger, price, in_bound, out_bound)
            request = request.override(model=model)
        caps = Caps(
            usd_nano=usd_cap_nano(context.max_usd, reserve, final=request.final),
            tokens=context.max_tokens,
            llm_calls=context.max_llm_calls,
        )
        spool = AnswerSpool(context.workspace, request.thread_id)
        key = request_key(name, request.messages, request.tool_schemas())
        return _Plan(request, name, price, in_bound, out_bound, caps, spool, key)

    async def _attempt(
        self, plan: _Plan, ledger: Ledger, handler: ModelHandler
    ) -> ModelResponse | Failure:
        """One reserved attempt: the response, or the failure to retry after."""
        request = plan.request
        await self._durable_wait(request, ledger)
        left = await self.budget.time_left(request.context, request.thread_id)
        if left is not None and left[0] < MIN_CALL_SECONDS:
            raise BudgetStop(left[1])
        reservation = await reserve_call(
            ledger,
            thread_id=request.thread_id,
            node=request.node,
            model=plan.name,
            price=plan.price,
            input_tokens=plan.input_tokens,
            output_tokens=plan.output_tokens,
            caps=plan.caps,
        )
        timeout = request.context.call_timeout_seconds
        if left is not None:
            timeout = min(timeout, left[0])
        try:
            async with asyncio.timeout(timeout):
                response = await handler(request)
        except TimeoutError:
            await reservation.fail(f"timed out after {timeout:.1f}s", billed=True)
            if left is not None and timeout >= left[0]:
                raise BudgetStop(left[1]) from None
            return Failure("transient", True, f"no answer within {timeout:.0f}s")
        except Exception as exc:
            return await _failed(reservation, exc, request.thread_id)
        try:
            charged = await reservation.settle(response.message)
        except DatabaseUnreachable:
            # Answered (and billed) but not recorded: keep the answer for the resumed run
            # rather than pay for it again.
            if response.message is not None:
                held = HeldAnswer(reservation.call_id, reservation.usd_nano, response.message)
                await plan.spool.hold(plan.key, held)
            raise
        return dataclasses.replace(response, usd=nano_to_usd(charged))

    async def _durable_wait(self, request: ModelRequest, ledger: Ledger) -> None:
        """Sleep out a Retry-After recorded before (by this process or one that died)."""
        not_before = await ledger.not_before(request.thread_id)
        wait = (not_before or 0) - time.time()
        if wait <= 0:
            return
        left = await self.budget.time_left(request.context, request.thread_id)
        if left is not None and wait > left[0] - MIN_CALL_SECONDS:
            # The provider's wait outlasts the time limit: stop now rather than sleep in vain.
            log.warning("provider asks to wait %.0fs, more than the %.0fs left", wait, left[0])
            raise BudgetStop(left[1])
        log.info("waiting %.1fs before the next model call (provider's Retry-After)", wait)
        await asyncio.sleep(wait)

    @staticmethod
    async def _back_off(thread_id: str, ledger: Ledger, failure: Failure, failures: int) -> None:
        """Record when the next attempt may start, or stop when the attempts are used up."""
        limited = failure.kind == "rate_limit"
        attempts = BACKOFF.rate_limit_attempts if limited else BACKOFF.transient_attempts
        if failures >= attempts:
            code = StopReason.RATE_LIMITED if limited else StopReason.PROVIDER_UNAVAILABLE
            raise ProviderStop(
                f"{code.value}: {failures} attempts failed, the last with {failure.detail}. "
                f"Resume later with {resume_hint(thread_id)}",
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
        await ledger.set_not_before(thread_id, time.time() + delay)


async def _use_held(
    plan: _Plan, held: HeldAnswer, ledger: Ledger, handler: ModelHandler
) -> ModelResponse:
    """Use the answer this request got while the database was unreachable.

    The held answer (`budgets.spool`) is parsed as the provider's answer would be, and
    settled now on its original reservation.
    """
    log.info("using the answer to call %s kept while the database was away", held.call_id)
    response = await handler(plan.request.override(model=ReplayModel(message=held.message)))
    reservation = Reservation(ledger, held.call_id, held.worst_nano, plan.price)
    charged = await reservation.settle(held.message)
    await plan.spool.forget(plan.key)
    return dataclasses.replace(response, usd=nano_to_usd(charged))


async def _failed(reservation: Reservation, exc: Exception, thread_id: str) -> Failure:
    """End the reservation of an attempt that raised `exc`; the failure to retry after.

    Raises:
        RunStop: the provider's answer stops the run (its `stop` reason).
        Exception: `exc` itself, when no classifier knows it (kept charged).
    """
    known = classify(exc, thread_id)
    if known is None:
        await reservation.fail(describe(exc), billed=True)
        raise exc
    await reservation.fail(describe(exc) if known.billed else known.detail, billed=known.billed)
    if known.stop is not None:
        raise known.stop from exc
    return known


async def _fit_output(
    request: ModelRequest, ledger: Ledger, price: Price, in_bound: int, out: int
) -> tuple[BaseChatModel, int]:
    """For finish only: lower max_tokens until the summary fits in the money left.

    So a run stopped by max_usd still gets a written summary when its reserve is small.
    """
    model, context = request.model, request.context
    reserve = final_reserve_usd(context.max_usd, context.final_reserve_usd)
    cap = usd_cap_nano(context.max_usd, reserve, final=True)
    if cap is None or "max_tokens" not in getattr(type(model), "model_fields", {}):
        return model, out
    headroom = cap - (await ledger.totals(request.thread_id)).charged_nusd
    if worst_case_nano(price, in_bound, out) <= headroom or out <= MIN_SUMMARY_TOKENS:
        return model, out
    if worst_case_nano(price, in_bound, MIN_SUMMARY_TOKENS) > headroom:
        return model, out  # cannot fit at all: the reservation refuses, finish goes without
    lo, hi = MIN_SUMMARY_TOKENS, out
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if worst_case_nano(price, in_bound, mid) <= headroom else (lo, mid)
    return model.model_copy(update={"max_tokens": lo}), lo
