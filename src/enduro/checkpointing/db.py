"""A small async SQL facade over PostgreSQL (psycopg pool) and SQLite (aiosqlite).

enduro's own tables are written with one SQL text for both: `%s` placeholders (rewritten to
`?` for SQLite), `ON CONFLICT` upserts and types both engines accept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal, Protocol

import aiosqlite
from psycopg_pool import AsyncConnectionPool

Row = dict[str, Any]
Dialect = Literal["postgres", "sqlite"]


class Transaction(Protocol):
    """Statements that commit together, or not at all when the block raises."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Database(Protocol):
    dialect: Dialect

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    async def script(self, statements: Sequence[str]) -> None: ...
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


class PostgresDatabase:
    dialect: Dialect = "postgres"

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self.pool = pool

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return int(cur.rowcount)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            row = await cur.fetchone()
            return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return [dict(r) for r in await cur.fetchall()]

    async def script(self, statements: Sequence[str]) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            for stmt in statements:
                await conn.execute(stmt)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.pool.connection() as conn, conn.transaction():
            yield _PostgresTransaction(conn)


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


class SqliteDatabase:
    dialect: Dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn
        self.conn.row_factory = aiosqlite.Row
        # One aiosqlite connection serialises statements itself, but a statement plus its
        # commit must not interleave with another coroutine's.
        self._lock = asyncio.Lock()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%s", "?")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            cur = await self.conn.execute(self._sql(sql), tuple(params))
            await self.conn.commit()
            return cur.rowcount

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._lock:
            cur = await self.conn.execute(self._sql(sql), tuple(params))
            row = await cur.fetchone()
            return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._lock:
            cur = await self.conn.execute(self._sql(sql), tuple(params))
            return [dict(r) for r in await cur.fetchall()]

    async def script(self, statements: Sequence[str]) -> None:
        async with self._lock:
            try:
                for stmt in statements:
                    await self.conn.execute(self._sql(stmt))
                await self.conn.commit()
            except BaseException:
                await self.conn.rollback()
                raise

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads and
            # then writes can fail with SQLITE_BUSY when another process wrote in between.
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self.conn)
            except BaseException:
                await self.conn.rollback()
                raise
            await self.conn.commit()


class _SqliteTransaction:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(SqliteDatabase._sql(sql), tuple(params))
        return cur.rowcount

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = await self.conn.execute(SqliteDatabase._sql(sql), tuple(params))
        row = await cur.fetchone()
        return dict(row) if row is not None else None

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = await self.conn.execute(SqliteDatabase._sql(sql), tuple(params))
        return [dict(r) for r in await cur.fetchall()]


@asynccontextmanager
async def sqlite_connection(path: str) -> AsyncIterator[aiosqlite.Connection]:
    """A connection tuned for several processes sharing one file (CLI run + cancel/status)."""
    conn = await aiosqlite.connect(path, timeout=30)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=30000")
        await conn.execute("PRAGMA synchronous=NORMAL")
        yield conn
    finally:
        await conn.close()
