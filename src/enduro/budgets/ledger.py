"""The spend ledger: one row per model call, written before the call and settled after.

A row holds the call's worst-case reservation; settling replaces it with the price of the
usage the provider reported. A row whose usage never arrives (the process died, the stream
was cut, the call timed out) stays charged at its reservation, because the provider may
have billed it. A row the provider refused outright (an HTTP 4xx answer: rate limit, bad
key, bad request) is released to zero, because nothing was generated.

    charged(row) = settled if settled else reserved;   spend(thread) = Σ charged(row)

Reserving checks the thread's limits and inserts the row in one transaction that holds a
per-thread lock (a PostgreSQL advisory lock; SQLite's write lock through BEGIN IMMEDIATE), so
two processes or two parallel tasks cannot both pass the check with the last dollar.

The same tables hold the thread's active run time (`enduro_clock`), flushed every few seconds
while a node runs, and the earliest time the provider allowed the next call (Retry-After),
so both survive a crash.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from enduro.budgets.pricing import TokenCounts, nano_to_usd
from enduro.errors import BudgetStop, StopReason
from enduro.storage import Database, Transaction, fencing

# Key space of the per-thread advisory lock (the migration lock uses a single bigint key,
# a separate key space).
_LOCK_CLASS = 870413

_CHARGED = "COALESCE(settled_nusd, reserved_nusd)"
_CHARGED_TOKENS = "COALESCE(settled_tokens, reserved_tokens)"
_TOTALS = f"""SELECT
    COALESCE(SUM({_CHARGED}), 0) AS charged_nusd,
    COALESCE(SUM(CASE WHEN state = 'open' THEN reserved_nusd ELSE 0 END), 0) AS open_nusd,
    COALESCE(SUM(CASE WHEN state IN ('open', 'lost') THEN reserved_nusd ELSE 0 END), 0)
        AS unsettled_nusd,
    COALESCE(SUM({_CHARGED_TOKENS}), 0) AS charged_tokens,
    COALESCE(SUM(CASE WHEN state <> 'released' THEN calls ELSE 0 END), 0) AS llm_calls,
    COALESCE(SUM(CASE WHEN state = 'settled' THEN calls ELSE 0 END), 0) AS settled_calls,
    COALESCE(SUM(CASE WHEN state = 'open' THEN calls ELSE 0 END), 0) AS open_calls,
    COALESCE(SUM(CASE WHEN state = 'lost' THEN calls ELSE 0 END), 0) AS lost_calls,
    COALESCE(SUM(CASE WHEN state = 'released' THEN calls ELSE 0 END), 0) AS released_calls,
    COALESCE(SUM(CASE WHEN priced = 0 THEN calls ELSE 0 END), 0) AS unpriced_calls,
    COALESCE(SUM(input_tokens), 0) AS input_tokens,
    COALESCE(SUM(output_tokens), 0) AS output_tokens,
    COUNT(*) AS rows
FROM enduro_spend WHERE thread_id = %s"""

# Rows rolled up per (model, node, state) once a thread has this many, keeping the newest
# KEEP_ROWS as they are: totals stay exact, and the ledger (and the sum each reservation
# takes) stays bounded however many calls a run makes.
COMPACT_AT_ROWS = 256
KEEP_ROWS = 64
_ROLLUP_COLUMNS = (
    "reserved_nusd",
    "reserved_tokens",
    "settled_nusd",
    "settled_tokens",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "calls",
)


@dataclass(frozen=True)
class Caps:
    """The limits a reservation must fit under (None: unlimited)."""

    usd_nano: int | None = None
    tokens: int | None = None
    llm_calls: int | None = None


@dataclass(frozen=True)
class Totals:
    """A thread's spend as the ledger records it."""

    charged_nusd: int = 0
    """Settled amounts plus the reservations of calls never settled."""
    open_nusd: int = 0
    """Reservations of calls in flight (or whose process died)."""
    unsettled_nusd: int = 0
    """Reservations of every call that never settled: in flight, or whose usage never
    arrived (process died, timeout, cut stream, no usage reported). Each stays charged at
    this worst case, so it is part of `charged_nusd`."""
    charged_tokens: int = 0
    llm_calls: int = 0
    """Calls that reached the provider and were not refused by it."""
    settled_calls: int = 0
    open_calls: int = 0
    lost_calls: int = 0
    released_calls: int = 0
    unpriced_calls: int = 0
    input_tokens: int = 0
    """Prompt tokens the provider reported (settled calls only)."""
    output_tokens: int = 0
    rows: int = 0
    """Ledger rows of the thread (calls, or roll-ups of older calls)."""

    @property
    def usd(self) -> float:
        """`charged_nusd` in dollars: settled amounts plus reservations never settled."""
        return nano_to_usd(self.charged_nusd)

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> Totals:
        """Totals from the `_TOTALS` query's row; no row (no calls yet) is all zeros."""
        if not row:
            return cls()
        return cls(**{k: int(row.get(k) or 0) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class SpendLine:
    """Spend of one (model, node) pair, for the report."""

    model: str
    node: str
    calls: int
    usd: float
    input_tokens: int
    output_tokens: int


class Ledger:
    """The spend ledger and run clock of every thread in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _lock(self, tx: Transaction, thread_id: str) -> None:
        await self.db.lock(tx, _LOCK_CLASS, thread_id)

    async def reserve(
        self,
        *,
        thread_id: str,
        node: str,
        model: str,
        usd_nano: int,
        tokens: int,
        caps: Caps,
        priced: bool = True,
    ) -> str:
        """Record a call's worst case before it is made; BudgetStop if a limit would pass.

        Returns the row's call id, for `settle`, `release` or `mark_lost`.
        """
        call_id = uuid.uuid4().hex

        async def write(tx: Transaction) -> Totals:
            # A process that lost the thread's lease reserves nothing (storage.fencing).
            await fencing.check(tx, thread_id, self.db.dialect)
            await self._lock(tx, thread_id)
            totals = Totals.from_row(await tx.fetchone(_TOTALS, (thread_id,)))
            # Retried after a lost connection whose COMMIT had gone through: reserved already.
            if await tx.fetchone("SELECT 1 FROM enduro_spend WHERE call_id = %s", (call_id,)):
                return totals
            if caps.usd_nano is not None and totals.charged_nusd + usd_nano > caps.usd_nano:
                raise BudgetStop(StopReason.MAX_USD)
            if caps.tokens is not None and totals.charged_tokens + tokens > caps.tokens:
                raise BudgetStop(StopReason.MAX_TOKENS)
            if caps.llm_calls is not None and totals.llm_calls + 1 > caps.llm_calls:
                raise BudgetStop(StopReason.MAX_LLM_CALLS)
            await tx.execute(
                "INSERT INTO enduro_spend (call_id, thread_id, node, model, state, priced,"
                " reserved_nusd, reserved_tokens, created_at)"
                " VALUES (%s, %s, %s, %s, 'open', %s, %s, %s, %s)",
                (call_id, thread_id, node, model, int(priced), usd_nano, tokens, time.time()),
            )
            return totals

        totals = await self.db.transact(write, "ledger reserve")
        if totals.rows >= COMPACT_AT_ROWS:
            await self.compact(thread_id)
        return call_id

    async def settle(self, call_id: str, *, usd_nano: int, counts: TokenCounts) -> None:
        """Replace the reservation with the price of the usage the provider reported."""
        await self.db.execute(
            "UPDATE enduro_spend SET state = 'settled', settled_nusd = %s, settled_tokens = %s,"
            " input_tokens = %s, cached_input_tokens = %s, output_tokens = %s,"
            " reasoning_tokens = %s, settled_at = %s WHERE call_id = %s",
            (
                usd_nano,
                counts.total,
                counts.input,
                counts.cached_input,
                counts.output,
                counts.reasoning,
                time.time(),
                call_id,
            ),
        )

    async def release(self, call_id: str, detail: str) -> None:
        """The provider refused the call before generating anything: no charge."""
        await self.db.execute(
            "UPDATE enduro_spend SET state = 'released', settled_nusd = 0, settled_tokens = 0,"
            " detail = %s, settled_at = %s WHERE call_id = %s",
            (detail[:500], time.time(), call_id),
        )

    async def mark_lost(self, call_id: str, detail: str) -> None:
        """The usage never arrived: the row stays charged at its reservation."""
        await self.db.execute(
            "UPDATE enduro_spend SET state = 'lost', detail = %s, settled_at = %s"
            " WHERE call_id = %s",
            (detail[:500], time.time(), call_id),
        )

    async def totals(self, thread_id: str) -> Totals:
        """The thread's ledger totals (money in nano-dollars, calls by state, tokens, rows)."""
        return Totals.from_row(await self.db.fetchone(_TOTALS, (thread_id,)))

    async def breakdown(self, thread_id: str) -> list[SpendLine]:
        """Spend per (model, node): calls (refused ones left out), dollars as charged, tokens."""
        rows = await self.db.fetchall(
            f"SELECT model, node, SUM(CASE WHEN state <> 'released' THEN calls ELSE 0 END)"
            " AS calls,"
            f" COALESCE(SUM({_CHARGED}), 0) AS nusd,"
            " COALESCE(SUM(input_tokens), 0) AS input_tokens,"
            " COALESCE(SUM(output_tokens), 0) AS output_tokens"
            " FROM enduro_spend WHERE thread_id = %s GROUP BY model, node ORDER BY model, node",
            (thread_id,),
        )
        return [
            SpendLine(
                model=r["model"],
                node=r["node"],
                calls=int(r["calls"] or 0),
                usd=nano_to_usd(int(r["nusd"] or 0)),
                input_tokens=int(r["input_tokens"] or 0),
                output_tokens=int(r["output_tokens"] or 0),
            )
            for r in rows
        ]

    async def calls(self, thread_id: str) -> list[dict[str, Any]]:
        """Every row of the thread in time order.

        Each is `{"at", "node", "model", "state", "calls", "usd", "rollup"}` (`at` epoch seconds of
        the reservation, `usd` as charged). Roll-ups of older calls carry the time of the first call
        they fold; bounded by compaction.
        """
        rows = await self.db.fetchall(
            f"SELECT call_id, created_at, node, model, state, calls, {_CHARGED} AS nusd"
            " FROM enduro_spend WHERE thread_id = %s ORDER BY created_at, call_id",
            (thread_id,),
        )
        return [
            {
                "at": float(r["created_at"]),
                "node": r["node"],
                "model": r["model"],
                "state": r["state"],
                "calls": int(r["calls"] or 0),
                "usd": nano_to_usd(int(r["nusd"] or 0)),
                "rollup": str(r["call_id"]).startswith("rollup:"),
            }
            for r in rows
        ]

    async def compact(self, thread_id: str, keep: int | None = None) -> int:
        """Roll finished rows up; returns how many rows were folded.

        Rows older than the newest `keep` (default KEEP_ROWS) become one row per (model, node,
        state). Open rows are never touched, so a call in flight settles its own row.
        """
        keep = KEEP_ROWS if keep is None else keep

        async def fold(tx: Transaction) -> int:
            await self._lock(tx, thread_id)
            cutoff = await tx.fetchone(
                "SELECT created_at FROM enduro_spend WHERE thread_id = %s"
                " ORDER BY created_at DESC LIMIT 1 OFFSET %s",
                (thread_id, keep),
            )
            if cutoff is None:
                return 0
            old = (
                "thread_id = %s AND state <> 'open' AND call_id NOT LIKE 'rollup:%%'"
                " AND created_at <= %s"
            )
            params = (thread_id, cutoff["created_at"])
            sums = ", ".join(f"SUM({c}) AS {c}" for c in _ROLLUP_COLUMNS)
            groups = await tx.fetchall(
                f"SELECT model, node, state, MIN(priced) AS priced, MIN(created_at) AS first,"
                f" {sums} FROM enduro_spend WHERE {old} GROUP BY model, node, state",
                params,
            )
            for g in groups:
                await self._fold(tx, thread_id, g)
            return await tx.execute(f"DELETE FROM enduro_spend WHERE {old}", params)

        return await self.db.transact(fold, "ledger compact")

    @staticmethod
    async def _fold(tx: Transaction, thread_id: str, g: dict[str, Any]) -> None:
        columns = ", ".join(_ROLLUP_COLUMNS)
        marks = ", ".join(["%s"] * len(_ROLLUP_COLUMNS))
        # A settled roll-up adds settled amounts; a lost one keeps settled NULL, so it stays
        # charged at the sum of its reservations, like the rows it replaces.
        adds = ", ".join(
            f"{c} = enduro_spend.{c} + excluded.{c}"
            if c != "settled_nusd" and c != "settled_tokens"
            else f"{c} = CASE WHEN enduro_spend.{c} IS NULL THEN NULL"
            f" ELSE enduro_spend.{c} + excluded.{c} END"
            for c in _ROLLUP_COLUMNS
        )
        await tx.execute(
            f"INSERT INTO enduro_spend (call_id, thread_id, node, model, state, priced,"
            f" created_at, detail, {columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {marks})"
            f" ON CONFLICT (call_id) DO UPDATE SET {adds}",
            (
                f"rollup:{thread_id}:{g['model']}:{g['node']}:{g['state']}",
                thread_id,
                g["node"],
                g["model"],
                g["state"],
                int(g["priced"]),
                float(g["first"]),
                "roll-up of older calls",
                *(None if g[c] is None else int(g[c]) for c in _ROLLUP_COLUMNS),
            ),
        )

    # -- run clock ------------------------------------------------------------------------

    async def active_seconds(self, thread_id: str) -> float:
        """Active run seconds recorded for the thread (`enduro_clock`); 0.0 before any."""
        row = await self.db.fetchone(
            "SELECT active_seconds FROM enduro_clock WHERE thread_id = %s", (thread_id,)
        )
        return float(row["active_seconds"]) if row else 0.0

    async def add_active_seconds(self, thread_id: str, seconds: float) -> None:
        """Add `seconds` of active run time to the thread's clock row (created on first use)."""
        now = time.time()
        await self.db.execute(
            "INSERT INTO enduro_clock (thread_id, active_seconds, updated_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (thread_id) DO UPDATE SET"
            " active_seconds = enduro_clock.active_seconds + excluded.active_seconds,"
            " updated_at = excluded.updated_at",
            (thread_id, seconds, now),
        )

    async def not_before(self, thread_id: str) -> float | None:
        """The epoch time before which no model call may start (a Retry-After), or None."""
        row = await self.db.fetchone(
            "SELECT not_before FROM enduro_clock WHERE thread_id = %s", (thread_id,)
        )
        return float(row["not_before"]) if row and row["not_before"] is not None else None

    async def set_not_before(self, thread_id: str, when: float) -> None:
        """Record that the provider asked for no call before `when` (epoch seconds).

        It is kept in the database so a resumed run honours the wait too.
        """
        await self.db.execute(
            "INSERT INTO enduro_clock (thread_id, active_seconds, not_before, updated_at)"
            " VALUES (%s, 0, %s, %s) ON CONFLICT (thread_id) DO UPDATE SET"
            " not_before = excluded.not_before, updated_at = excluded.updated_at",
            (thread_id, when, time.time()),
        )
