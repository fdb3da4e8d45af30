"""The database facade: one small async SQL interface over PostgreSQL and SQLite.

Invariants:

- enduro's SQL is one text for both engines: `%s` placeholders (the SQLite class rewrites
  them to `?`), `ON CONFLICT` upserts, and column types both engines accept (TEXT, INTEGER,
  BIGINT, DOUBLE PRECISION). Rows come back as plain dicts (`Row`) from either engine.
- A `transaction()` block commits when it exits normally and rolls back when it raises.
- What differs between the engines lives in the two subclasses of `Database`,
  `enduro.storage.postgres.PostgresDatabase` (a psycopg pool shared with the checkpoint
  saver) and `enduro.storage.sqlite.SqliteDatabase` (one aiosqlite connection), and nowhere
  else: how connections are held, how a transaction begins, how a lock is taken.

Every statement, and every transaction run through `transact`, goes through the database's
`OutagePolicy`: while the database cannot be reached (or, on SQLite, is locked by another
process) it is retried with backoff, and after the outage timeout it raises
`DatabaseUnreachable` (see `enduro.storage.outage`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from enduro.storage.outage import OutagePolicy

Row = dict[str, Any]
"""One result row: column name -> value."""
Dialect = Literal["postgres", "sqlite"]
T = TypeVar("T")


class Transaction(Protocol):
    """Statements that commit together, or not at all when the block raises."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement inside the transaction; returns the rows it changed."""
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """Run one query inside the transaction; its first row, or None."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one query inside the transaction; all its rows."""
        ...


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


def statement_name(sql: str) -> str:
    """A statement's first words, for log lines (never its parameters)."""
    return " ".join(sql.split()[:3])
