"""The spend ledger and run clock on both engines: reserve, settle, release, atomic limits."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from enduro.budgets.clock import ActiveClock
from enduro.budgets.ledger import Caps, Ledger
from enduro.budgets.pricing import TokenCounts
from enduro.budgets.report import load_spend
from enduro.errors import BudgetStop
from enduro.storage import open_backend


def _tid() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_reserve_settle_release_and_lost(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        ledger, tid = Ledger(backend.db), _tid()
        caps = Caps()
        ok = await ledger.reserve(
            thread_id=tid, node="act", model="m", usd_nano=1000, tokens=100, caps=caps
        )
        refused = await ledger.reserve(
            thread_id=tid, node="act", model="m", usd_nano=1000, tokens=100, caps=caps
        )
        lost = await ledger.reserve(
            thread_id=tid, node="reflect", model="m", usd_nano=700, tokens=70, caps=caps
        )
        await ledger.reserve(
            thread_id=tid, node="plan", model="m2", usd_nano=300, tokens=30, caps=caps
        )  # left open: its process "died"
        await ledger.settle(ok, usd_nano=250, counts=TokenCounts(input=20, output=5))
        await ledger.release(refused, "HTTP 429")
        await ledger.mark_lost(lost, "cut stream")
        totals = await ledger.totals(tid)
        assert totals.charged_nusd == 250 + 0 + 700 + 300
        assert totals.open_nusd == 300 and totals.charged_tokens == 25 + 70 + 30
        assert (totals.llm_calls, totals.settled_calls) == (3, 1), "a refused call is no call"
        assert (totals.open_calls, totals.lost_calls, totals.released_calls) == (1, 1, 1)
        assert (totals.input_tokens, totals.output_tokens) == (20, 5)
        lines = {(x.model, x.node): x for x in await ledger.breakdown(tid)}
        assert lines[("m", "act")].calls == 1 and lines[("m", "act")].usd == 250e-9
        assert lines[("m2", "plan")].usd == 300e-9
        assert (await ledger.totals(_tid())).charged_nusd == 0, "threads are separate"


async def test_each_cap_refuses_with_its_name(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        ledger, tid = Ledger(backend.db), _tid()

        async def reserve(caps: Caps, usd: int = 10, tokens: int = 10) -> str:
            return await ledger.reserve(
                thread_id=tid, node="act", model="m", usd_nano=usd, tokens=tokens, caps=caps
            )

        await reserve(Caps(usd_nano=20, tokens=20, llm_calls=2))
        with pytest.raises(BudgetStop, match="max_usd"):
            await reserve(Caps(usd_nano=20), usd=11)
        with pytest.raises(BudgetStop, match="max_tokens"):
            await reserve(Caps(tokens=20), tokens=11)
        await reserve(Caps(usd_nano=20, tokens=20, llm_calls=2))  # exactly at every cap
        with pytest.raises(BudgetStop, match="max_llm_calls"):
            await reserve(Caps(llm_calls=2), usd=0, tokens=0)
        assert (await ledger.totals(tid)).charged_nusd == 20


async def test_parallel_reservations_cannot_share_the_last_dollar(db_url: str) -> None:
    # Two "processes" (separate connections or pools) and parallel tasks in each race for a
    # cap that fits exactly 7 reservations: exactly 7 win, whatever the interleaving.
    tid = _tid()
    async with open_backend(db_url) as one, open_backend(db_url) as two:
        ledgers = [Ledger(one.db), Ledger(two.db)]

        async def attempt(i: int) -> bool:
            try:
                await ledgers[i % 2].reserve(
                    thread_id=tid,
                    node="act",
                    model="m",
                    usd_nano=100,
                    tokens=1,
                    caps=Caps(usd_nano=700),
                )
            except BudgetStop:
                return False
            return True

        won = await asyncio.gather(*(attempt(i) for i in range(40)))
        assert sum(won) == 7
        assert (await ledgers[0].totals(tid)).charged_nusd == 700


async def test_clock_counts_parallel_nodes_once_and_survives(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        ledger, tid, clock = Ledger(backend.db), _tid(), ActiveClock()

        async def node(seconds: float) -> None:
            async with clock.running(ledger, tid):
                await asyncio.sleep(seconds)

        await asyncio.gather(node(0.3), node(0.3), node(0.3))
        first = await ledger.active_seconds(tid)
        assert 0.3 <= first < 0.6, "three parallel tasks of 0.3s are 0.3s of run time"
        await asyncio.sleep(0.3)  # idle: not run time
        await node(0.1)
        total = await ledger.active_seconds(tid)
        assert first + 0.1 <= total < first + 0.3
        # A fresh clock (another process, after a restart) continues from the database.
        later = ActiveClock()
        async with later.running(ledger, tid):
            assert (later.used(tid) or 0) >= total


async def test_clock_flushes_while_a_long_node_runs(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enduro.budgets.clock as clock_module

    monkeypatch.setattr(clock_module, "TICK_SECONDS", 0.1)
    async with open_backend(db_url) as backend:
        ledger, tid, clock = Ledger(backend.db), _tid(), ActiveClock()
        async with clock.running(ledger, tid):
            await asyncio.sleep(0.45)
            # What a kill -9 right now would leave behind: all but the last tick.
            assert await ledger.active_seconds(tid) >= 0.3


async def test_not_before_is_kept(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        ledger, tid = Ledger(backend.db), _tid()
        assert await ledger.not_before(tid) is None
        await ledger.set_not_before(tid, 1234.5)
        await ledger.add_active_seconds(tid, 2.0)
        assert await ledger.not_before(tid) == 1234.5
        assert await ledger.active_seconds(tid) == 2.0


async def test_compaction_keeps_totals_exact_and_the_ledger_bounded(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import enduro.budgets.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "COMPACT_AT_ROWS", 30)
    monkeypatch.setattr(ledger_module, "KEEP_ROWS", 10)
    async with open_backend(db_url) as backend:
        ledger, tid = Ledger(backend.db), _tid()
        outcomes = ["settle", "release", "lost", "settle"]
        expected_nusd = 0
        for i in range(120):
            model, node = ("m1", "act") if i % 3 else ("m2", "reflect")
            call = await ledger.reserve(
                thread_id=tid, node=node, model=model, usd_nano=1000 + i, tokens=50, caps=Caps()
            )
            kind = outcomes[i % 4] if i < 118 else "open"  # the last two stay in flight
            if kind == "settle":
                await ledger.settle(call, usd_nano=400, counts=TokenCounts(input=30, output=3))
                expected_nusd += 400
            elif kind == "release":
                await ledger.release(call, "429")
            elif kind == "lost":
                await ledger.mark_lost(call, "cut")
                expected_nusd += 1000 + i
            else:
                expected_nusd += 1000 + i
        totals = await ledger.totals(tid)
        assert totals.rows <= 30, "older rows are rolled up"
        assert totals.charged_nusd == expected_nusd
        assert (totals.llm_calls, totals.released_calls) == (90, 30)
        assert (totals.settled_calls, totals.lost_calls, totals.open_calls) == (59, 29, 2)
        assert totals.input_tokens == 59 * 30 and totals.output_tokens == 59 * 3
        assert totals.charged_tokens == 59 * 33 + 29 * 50 + 2 * 50
        lines = {(x.model, x.node): x for x in await ledger.breakdown(tid)}
        assert sum(x.calls for x in lines.values()) == 90
        assert round(sum(x.usd for x in lines.values()) * 1e9) == expected_nusd


async def test_reserved_usd_counts_every_call_that_never_settled(db_url: str) -> None:
    """docs/budgets.md: `usage.reserved_usd` is the worst case of calls in flight *or never
    settled*; a call whose usage never arrived stays charged at its reservation, so it
    shows there (it used to count only the calls still open)."""
    async with open_backend(db_url) as backend:
        ledger, tid = Ledger(backend.db), _tid()

        async def reserve(usd: int) -> str:
            return await ledger.reserve(
                thread_id=tid, node="act", model="m", usd_nano=usd, tokens=1, caps=Caps()
            )

        settled, no_usage, timed_out = await reserve(1000), await reserve(700), await reserve(50)
        await reserve(300)  # in flight
        await ledger.settle(settled, usd_nano=250, counts=TokenCounts(input=2, output=1))
        await ledger.mark_lost(no_usage, "no usage reported")
        await ledger.mark_lost(timed_out, "timed out after 30.0s")
        usage = (await load_spend(backend.db, tid)).usage()
        assert usage["reserved_usd"] == pytest.approx((700 + 50 + 300) / 1e9)
        assert usage["unsettled_calls"] == 3
        assert usage["usd"] == pytest.approx((250 + 700 + 50 + 300) / 1e9)
