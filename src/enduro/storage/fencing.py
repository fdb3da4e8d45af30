"""Fencing: a process that lost a thread's lease writes nothing more to that thread.

Invariant: every write that advances a thread (a checkpoint, pending writes, a ledger
reservation, an outbox event) runs in one transaction with a check that this process still
holds the thread's lease at the epoch it claimed (`enduro_threads.owner` and `lease_epoch`).
On PostgreSQL the check takes `FOR SHARE` on the thread's row, so a takeover (`claim`, an
UPDATE of that row) waits for the write to commit, and every write after the takeover sees
the new epoch and fails with `LeaseLost`. SQLite transactions take the database's write lock
up front (`BEGIN IMMEDIATE`), which serialises them the same way.

Why: a worker paused past its lease (SIGSTOP, a long GC, a partition) wakes up with a model
answer in hand. Without the check it would write a checkpoint on top of the new owner's.

The lease is carried in a context variable set by the runner for the run, so the ledger and
the outbox (called deep inside nodes and callbacks) see it without new parameters; writes
for a thread this context does not hold (a CLI `cancel`, `webhooks deliver`) are unfenced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncCursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from enduro.storage.database import Transaction
from enduro.storage.outage import OutagePolicy
from enduro.storage.resilient import ResilientPostgresSaver


@dataclass(frozen=True)
class Lease:
    """What `threads.claim` returned: who holds the thread, and since which takeover."""

    thread_id: str
    owner: str
    epoch: int


class LeaseLost(RuntimeError):
    """Another process took the thread over; this one must stop writing to it.

    A RuntimeError so that LangGraph's default RetryPolicy does not retry it."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(
            f"lease on thread {lease.thread_id!r} lost (epoch {lease.epoch}, owner "
            f"{lease.owner}): another process runs it now; this one stops without writing"
        )
        self.lease = lease


current_lease: ContextVar[Lease | None] = ContextVar("enduro_lease", default=None)

_CHECK = (
    "SELECT 1 AS held FROM enduro_threads WHERE thread_id = %s AND owner = %s AND lease_epoch = %s"
)


def check_sql(dialect: str) -> str:
    """The lease check; on PostgreSQL it holds the row until commit (see module doc)."""
    return _CHECK + (" FOR SHARE" if dialect == "postgres" else "")


async def check(tx: Transaction, thread_id: str, dialect: str) -> None:
    """Raise LeaseLost inside `tx` if this context holds `thread_id`'s lease no more."""
    lease = current_lease.get()
    if lease is None or lease.thread_id != thread_id:
        return
    row = await tx.fetchone(check_sql(dialect), (lease.thread_id, lease.owner, lease.epoch))
    if row is None:
        raise LeaseLost(lease)


class FencedPostgresSaver(ResilientPostgresSaver):
    """The outage-resilient AsyncPostgresSaver for a connection pool, with two changes.

    - No saver-wide asyncio lock: the stock saver serialises every query of the process
      behind one lock even when it holds a pool, so 100 threads in one worker wait on each
      other's checkpoint writes. A pool connection is used by one coroutine at a time, which
      is all the lock protected.
    - With a lease, each write (`aput`, `aput_writes`, deletes: the `pipeline=True` paths)
      runs in one transaction that starts with the lease check. One saver per run.
    """

    def __init__(
        self, pool: AsyncConnectionPool[Any], outage: OutagePolicy, lease: Lease | None = None
    ) -> None:
        super().__init__(pool, outage)
        self.pool = pool
        self.lease = lease

    def for_lease(self, lease: Lease | None) -> FencedPostgresSaver:
        return FencedPostgresSaver(self.pool, self.outage, lease)

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        async with AsyncExitStack() as stack:
            cur = await self._open(stack, pipeline)
            yield cur

    async def _open(self, stack: AsyncExitStack, write: bool) -> AsyncCursor[DictRow]:
        """A cursor on a pool connection, in a fenced transaction for a write. A connection
        that died between the pool's check and its first statement (a server restart,
        an idle-killing NAT) fails before anything is written, so one retry on a fresh
        connection is safe (longer outages are the outage policy's, around the call)."""
        for attempt in (1, 2):
            inner = AsyncExitStack()
            try:
                conn = await inner.enter_async_context(self.pool.connection())
                if write:
                    await inner.enter_async_context(conn.transaction())
                cur: AsyncCursor[DictRow] = await inner.enter_async_context(
                    conn.cursor(binary=True, row_factory=dict_row)
                )
                if write and self.lease is not None:
                    await self._check(cur, self.lease)
            except psycopg.OperationalError:
                await inner.aclose()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                await inner.aclose()
                raise
            stack.push_async_exit(inner)
            return cur
        raise AssertionError("unreachable")

    @staticmethod
    async def _check(cur: AsyncCursor[DictRow], lease: Lease) -> None:
        await cur.execute(check_sql("postgres"), (lease.thread_id, lease.owner, lease.epoch))
        if await cur.fetchone() is None:
            raise LeaseLost(lease)
