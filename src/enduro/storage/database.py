"""The database facade: one small async SQL interface over PostgreSQL and SQLite.

Invariants:

- enduro's SQL is one text for both engines: `%s` placeholders (the SQLite class rewrites
  them to `?`), `ON CONFLICT` upserts, and column types both engines accept (TEXT, INTEGER,
  BIGINT, DOUBLE PRECISION). Rows come back as plain dicts (`Row`) from either engine.
- A `transaction()` block commits when it exits normally and rolls back when it raises.
- What differs between the engines lives in the two subclasses of `Database`,
  `PostgresDatabase` (a psycopg pool shared with the checkpoint saver) and `SqliteDatabase`
  (one aiosqlite connection), and nowhere else: how connections are held, how a
  transaction begins, how a lock is taken.

Every statement, and every transaction run through `transact`, goes through the database's
`OutagePolicy`: while the database cannot be reached (or, on SQLite, is locked by another
process) it is retried with backoff, and after the outage timeout it raises
`DatabaseUnreachable` (see `enduro.storage.outage`).
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import aiosqlite
from psycopg_pool import AsyncConnectionPool

from enduro.storage.outage import OutagePolicy

Row = dict[str, Any]
"""One result row: column name -> value."""
Dialect = Literal["postgres", "sqlite"]
T = TypeVar("T")

# SQLite waits this long for another process's write lock before it reports "database is
# locked"; the outage policy retries from there, so the wait is logged and bounded by
# --db-outage-timeout rather than hidden inside one statement.
SQLITE_BUSY_MS = 5000


class Transaction(Protocol):
    """Statements that commit together, or not at all when the block raises."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


class Database(ABC):
    """enduro's tables on one engine: statements, queries, transactions and locks.

    Outside a transaction every `execute` commits on its own. Every call waits out an
    unreachable database through `outage` (see `enduro.storage.outage`).
    """

    dialect: ClassVar[Dialect]
    outage: OutagePolicy

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run and commit one statement.

        Args:
            sql: One statement with `%s` placeholders.
            params: The placeholder values, in order.

        Returns:
            The number of rows the statement changed.

        Raises:
            DatabaseUnreachable: The outage outlasted the policy's timeout.
        """

    @abstractmethod
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run one query; returns its first row, or None when it has none."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one query; returns all its rows."""

    @abstractmethod
    async def script(self, statements: Sequence[str]) -> None:
        """Run parameterless statements (DDL) in one transaction."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One transaction, not retried: prefer `transact`, which retries all of it.

        On SQLite the block holds the file's write lock from its start, so a read then a
        write inside it cannot be interleaved with another writer's.
        """

    @abstractmethod
    async def lock(self, tx: Transaction, namespace: int, key: str | None = None) -> None:
        """Hold an exclusive lock on (`namespace`, `key`) until `tx` ends.

        Args:
            tx: The transaction that owns the lock.
            namespace: A number naming what is locked (one per kind of lock).
            key: What is locked within the namespace (a thread id), or None to lock the
                whole namespace.
        """

    async def transact(self, body: Callable[[Transaction], Awaitable[T]], what: str) -> T:
        """Run `body` in one transaction, all of it again while the database is unreachable.

        Args:
            body: The statements; must be repeatable (it may run more than once, and only
                the run that commits counts).
            what: Names the transaction in log lines.

        Returns:
            What `body` returned in the run that committed.

        Raises:
            DatabaseUnreachable: The outage outlasted the policy's timeout.
        """

        async def once() -> T:
            async with self.transaction() as tx:
                return await body(tx)

        return await self.outage.call(once, what)


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

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async def once() -> int:
            async with self._connection() as conn:
                cur = await conn.execute(sql, params)
                return int(cur.rowcount)

        return await self.outage.call(once, _what(sql))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async def once() -> Row | None:
            async with self._connection() as conn:
                cur = await conn.execute(sql, params)
                row = await cur.fetchone()
                return dict(row) if row is not None else None

        return await self.outage.call(once, _what(sql))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def once() -> list[Row]:
            async with self._connection() as conn:
                cur = await conn.execute(sql, params)
                return [dict(r) for r in await cur.fetchall()]

        return await self.outage.call(once, _what(sql))

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
        """See `Database.lock`: a transaction-level advisory lock, released by commit or
        rollback and never leaked by a crash.

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


class SqliteDatabase(Database):
    """enduro's tables in a SQLite file, through one aiosqlite connection.

    Args:
        conn: an open connection (see `sqlite_connection`).
        outage: the retry policy for "database is locked / busy" errors.
    """

    dialect: ClassVar[Dialect] = "sqlite"

    def __init__(self, conn: aiosqlite.Connection, outage: OutagePolicy | None = None) -> None:
        self.conn = conn
        self.outage = outage or OutagePolicy()
        self.conn.row_factory = aiosqlite.Row
        # One aiosqlite connection serialises statements itself, but a statement plus its
        # commit must not interleave with another coroutine's.
        self._lock = asyncio.Lock()

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("%s", "?")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async def once() -> int:
            async with self._lock:
                try:
                    cur = await self.conn.execute(self._sql(sql), tuple(params))
                    await self.conn.commit()
                except BaseException:
                    await _rollback(self.conn)
                    raise
                return cur.rowcount

        return await self.outage.call(once, _what(sql))

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async def once() -> Row | None:
            async with self._lock:
                cur = await self.conn.execute(self._sql(sql), tuple(params))
                row = await cur.fetchone()
                return dict(row) if row is not None else None

        return await self.outage.call(once, _what(sql))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def once() -> list[Row]:
            async with self._lock:
                cur = await self.conn.execute(self._sql(sql), tuple(params))
                return [dict(r) for r in await cur.fetchall()]

        return await self.outage.call(once, _what(sql))

    async def script(self, statements: Sequence[str]) -> None:
        async def once() -> None:
            async with self._lock:
                try:
                    for stmt in statements:
                        await self.conn.execute(self._sql(stmt))
                    await self.conn.commit()
                except BaseException:
                    await _rollback(self.conn)
                    raise

        await self.outage.call(once, "migration")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction, not retried: prefer `transact`, which retries all of it."""
        async with self._lock:
            # IMMEDIATE takes the write lock up front: a deferred transaction that reads and
            # then writes can fail with SQLITE_BUSY when another process wrote in between.
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTransaction(self.conn)
            except BaseException:
                await _rollback(self.conn)
                raise
            await self.conn.commit()

    async def lock(self, tx: Transaction, namespace: int, key: str | None = None) -> None:
        """See `Database.lock`: nothing to do.

        The transaction began with BEGIN IMMEDIATE, which already excludes every other writer
        of the database file, whatever the namespace and key.
        """


async def _rollback(conn: aiosqlite.Connection) -> None:
    # A failed COMMIT (busy) leaves the transaction open; a failed BEGIN leaves none, and
    # rolling back nothing is an error SQLite reports that must not hide the real one.
    with contextlib.suppress(Exception):
        await conn.rollback()


def _what(sql: str) -> str:
    """A statement's first words, for log lines (never its parameters)."""
    return " ".join(sql.split()[:3])


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
    conn = await aiosqlite.connect(path, timeout=SQLITE_BUSY_MS / 1000)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        yield conn
    finally:
        await conn.close()
