"""SQLite behind the `Database` facade: one aiosqlite connection to the file.

Several processes share one file (a run, and `enduro status` / `cancel` beside it), so
connections use WAL mode and wait `SQLITE_BUSY_MS` for a lock before the outage policy takes
over. Within a process one connection serialises its statements; a lock keeps a statement
and its commit, or a whole transaction, from interleaving with another coroutine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import aiosqlite
from typing_extensions import override

from enduro.errors import DatabaseUnavailable
from enduro.storage.database import Database, Dialect, Row, Transaction, statement_name
from enduro.storage.outage import OutagePolicy

# SQLite waits this long for another process's write lock before it reports "database is
# locked"; the outage policy retries from there, so the wait is logged and bounded by
# --db-outage-timeout rather than hidden inside one statement.
SQLITE_BUSY_MS = 5000


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

    @override
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

        return await self.outage.call(once, statement_name(sql))

    @override
    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async def once() -> Row | None:
            async with self._lock:
                cur = await self.conn.execute(self._sql(sql), tuple(params))
                row = await cur.fetchone()
                return dict(row) if row is not None else None

        return await self.outage.call(once, statement_name(sql))

    @override
    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async def once() -> list[Row]:
            async with self._lock:
                cur = await self.conn.execute(self._sql(sql), tuple(params))
                return [dict(r) for r in await cur.fetchall()]

        return await self.outage.call(once, statement_name(sql))

    @override
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
    """A connection tuned for several processes sharing one file (CLI run + cancel/status).

    Raises:
        enduro.errors.DatabaseUnavailable: the path is a directory, or SQLite cannot open or
            create the file there (missing parent, no permission).
    """
    # Checked before connecting: a failed open would leave aiosqlite's thread to report
    # "Event loop is closed" tracebacks after the command has already answered.
    if await asyncio.to_thread(os.path.isdir, path):
        raise DatabaseUnavailable(
            f"cannot use {path!r} as the SQLite database: it is a directory; point --db / "
            "ENDURO_DATABASE_URL at a file (e.g. .enduro/enduro.sqlite)"
        )
    try:
        conn = await aiosqlite.connect(path, timeout=SQLITE_BUSY_MS / 1000)
    except (sqlite3.Error, OSError) as exc:
        raise DatabaseUnavailable(
            f"cannot open the SQLite database {path!r}: {exc}; point --db / "
            "ENDURO_DATABASE_URL at a file in a directory you can write to"
        ) from exc
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        yield conn
    finally:
        await conn.close()
