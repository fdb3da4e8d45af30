"""PostgreSQL behind the `Database` facade: a psycopg pool, shared with the checkpoint saver.

The pool's connections are in autocommit mode with dict rows, as LangGraph's
`AsyncPostgresSaver` requires (see `enduro.storage.backend.postgres_pool`). Locks are
transaction-level advisory locks, released by commit or rollback and never leaked by a crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar

from psycopg_pool import AsyncConnectionPool
from typing_extensions import override

from enduro.storage.database import Database, Dialect, Row, Transaction, statement_name
from enduro.storage.outage import OutagePolicy


class PostgresDatabase(Database):
    """enduro's tables on PostgreSQL, through a psycopg pool.

    Args:
        pool: an open pool (see `backend.postgres_pool`).
        outage: the retry policy for unreachable-database errors.
    """

    dialect: ClassVar[Dialect] = "postgres"

    def __init__(self, pool: AsyncConnectionPool[Any], outage: OutagePolicy | None = None) -> None:
        self.pool = pool
        self.outage = outage or OutagePolicy()

    def _connection(self) -> AbstractAsyncContextManager[Any]:
        return self.pool.connection(timeout=self.outage.attempt_seconds)

    @override
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async def once() -> int:
            async with self._connection() as conn:
                cur = await conn.execute(sql, params)
                return int(cur.rowcount)

        return await self.outage.call(once, statement_name(sql))

    @override
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async def once() -> Row | None:
            async with self._connection() as conn:
                cur = await conn.execute(sql, params)
                row = await cur.fetchone()
                return dict(row) if row is not None else None

        return await self.outage.call(once, statement_name(sql))

    @override
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def once() -> list[Row]:
            async with self._connection() as conn:
                cur = await conn.execute(sql, params)
                return [dict(r) for r in await cur.fetchall()]

        return await self.outage.call(once, statement_name(sql))

    @override
    async def script(self, statements: Sequence[str]) -> None:
        async def once() -> None:
            async with self._connection() as conn, conn.transaction():
                for stmt in statements:
                    await conn.execute(stmt)

        await self.outage.call(once, "migration")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction, not retried: prefer `transact`, which retries all of it."""
        async with self._connection() as conn, conn.transaction():
            yield _PostgresTransaction(conn)

    async def lock(self, tx: Transaction, namespace: int, key: str | None = None) -> None:
        """See `Database.lock`: a transaction-level advisory lock.

        It is released by commit or rollback and never leaked by a crash.

        A whole namespace is the one-bigint key `namespace`; (namespace, key) is the two-int
        key (`namespace`, hashtext(`key`)). PostgreSQL keeps the two forms apart.
        """
        if key is None:
            await tx.fetchone("SELECT pg_advisory_xact_lock(%s::bigint)", (namespace,))
        else:
            await tx.fetchone(
                "SELECT pg_advisory_xact_lock(%s::integer, hashtext(%s))", (namespace, key)
            )


class _PostgresTransaction:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(sql, params)
        return int(cur.rowcount)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = await self.conn.execute(sql, params)
        row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = await self.conn.execute(sql, params)
        return [dict(r) for r in await cur.fetchall()]
