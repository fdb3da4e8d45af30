"""Checkpoint savers and a connection pool that ride out a database outage.

LangGraph writes a checkpoint after every super-step (`durability="sync"`) and the pending
writes of every finished task; a write that raises ends the run. The savers here put
LangGraph's own PostgreSQL and SQLite savers behind the database's `OutagePolicy`, so a
write during an outage waits for the database (up to the outage timeout) instead of failing
the run. Their writes are upserts keyed by checkpoint and task ids (`INSERT … ON CONFLICT`,
`INSERT OR REPLACE`), so repeating one is harmless.

`CheckedPool` finds dead pooled connections before they are used, all at once: psycopg_pool's
own `check` on checkout discards one dead connection and then sleeps with backoff (1, 2, 4,
8, 16 s) before it tries the next, so a burst of killed connections (a PostgreSQL restart, a
failover, `pg_terminate_backend`) made the next query wait about 30 s. Here the first failed
check runs the pool's `check()`, which tests every idle connection and replaces the dead
ones, and the request tries again at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg_pool import AsyncConnectionPool

from enduro.storage.outage import OutagePolicy

log = logging.getLogger(__name__)


class CheckedPool(AsyncConnectionPool[Any]):
    """An `AsyncConnectionPool` that checks each connection when it is handed out.

    On the first dead one it purges every dead idle connection in one pass (see the module
    docstring). Create it without `check=`: the checking happens in `getconn`.
    """

    async def getconn(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """A working connection, waiting up to `timeout` (default: the pool's) for one.

        Raises:
            psycopg_pool.PoolTimeout: no working connection within `timeout`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        purged = False
        while True:
            conn = await super().getconn(timeout=max(0.0, deadline - loop.time()))
            try:
                await self.check_connection(conn)
            except Exception as exc:
                # A broken connection goes back to be discarded and replaced by the pool.
                await self.putconn(conn)
                log.info("discarded a dead pooled connection: %s", exc)
                if not purged:
                    purged = True
                    await self.check()
                else:
                    # Fresh connections failing too: the server is going away; let the
                    # pool's reconnection (with its own backoff) do the waiting.
                    await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
                continue
            except BaseException:
                await self.putconn(conn)
                raise
            return conn


class _RetryingSaver(BaseCheckpointSaver[str]):
    """Reads and writes of the saver it is mixed into, retried through `outage`."""

    outage: OutagePolicy

    async def _recover(self) -> None:
        """Undo what a failed attempt left on the saver's connection (SQLite only)."""

    async def _retry(self, op: Any, what: str) -> Any:
        async def once() -> Any:
            try:
                return await op()
            except Exception:
                await self._recover()
                raise

        return await self.outage.call(once, what)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        read = super().aget_tuple
        found: CheckpointTuple | None = await self._retry(lambda: read(config), "checkpoint read")
        return found

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        write = super().aput
        saved: RunnableConfig = await self._retry(
            lambda: write(config, checkpoint, metadata, new_versions), "checkpoint write"
        )
        return saved

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        write = super().aput_writes
        await self._retry(lambda: write(config, writes, task_id, task_path), "pending writes")

    async def adelete_thread(self, thread_id: str) -> None:
        delete = super().adelete_thread
        await self._retry(lambda: delete(thread_id), "checkpoint delete")


class ResilientPostgresSaver(_RetryingSaver, AsyncPostgresSaver):
    """LangGraph's `AsyncPostgresSaver`, retrying through the database's outage policy.

    Args:
        pool: the pool of `backend.postgres_pool` (autocommit, dict rows).
        outage: the policy shared with enduro's own tables.
    """

    def __init__(self, pool: AsyncConnectionPool[Any], outage: OutagePolicy) -> None:
        super().__init__(pool)
        self.outage = outage


class ResilientSqliteSaver(_RetryingSaver, AsyncSqliteSaver):
    """LangGraph's `AsyncSqliteSaver`, retrying "database is locked".

    The retries go through the outage policy.

    Args:
        conn: a connection from `db.sqlite_connection`.
        outage: the policy shared with enduro's own tables.
    """

    def __init__(self, conn: Any, outage: OutagePolicy) -> None:
        super().__init__(conn)
        self.outage = outage

    async def _recover(self) -> None:
        # A statement that failed with SQLITE_BUSY can leave its implicit transaction open
        # (and, in WAL mode, pinned to an old snapshot that keeps failing): start clean.
        async with self.lock:
            with contextlib.suppress(Exception):
                await self.conn.rollback()
