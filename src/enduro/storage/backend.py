"""Open the one database that holds everything: LangGraph's checkpoints and enduro's tables.

A `Backend` pairs enduro's facade (`Database`) with LangGraph's checkpoint saver on the same
database: on PostgreSQL they share one pool, on SQLite each has its own connection to the
file. Opening migrates both schemas unless told not to, so every entry point (CLI, runner,
`langgraph dev`) finds the tables it needs. A database URL is `postgresql://…` (or
`postgres://…`) or a SQLite file: `sqlite:///abs/path`, `sqlite:rel/path` or a bare path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from enduro._redact import redact
from enduro.errors import ConfigError, DatabaseUnavailable
from enduro.storage.database import Database
from enduro.storage.fencing import FencedPostgresSaver, Lease
from enduro.storage.migrations import SCHEMA_VERSION, migrate
from enduro.storage.outage import OutagePolicy, outage_seconds_from_env
from enduro.storage.postgres import PostgresDatabase
from enduro.storage.queue_schema import ensure_queue_schema
from enduro.storage.resilient import CheckedPool, ResilientSqliteSaver
from enduro.storage.sqlite import SqliteDatabase, sqlite_connection

POOL_RECONNECT_SECONDS = 2.0
"""How long the pool keeps re-trying one lost connection in the background (backoff 1, 2 s)
before it gives up on it; the next request then opens a fresh one at once. psycopg_pool's
default (5 minutes, backoff up to minutes) left a run waiting long after the database came
back. The outage policy, not the pool, decides how long a run waits."""
CONNECT_TIMEOUT_SECONDS = 10
"""A server that does not answer a connection attempt (a dropped route, not a refusal)."""


def is_postgres(url: str) -> bool:
    """Whether `url` names a PostgreSQL database (rather than a SQLite file)."""
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> Path:
    """The file a SQLite URL (`sqlite:///abs`, `sqlite:rel` or a bare path) names.

    Raises:
        ConfigError: `url` has a scheme enduro does not support.
    """
    if url.startswith("sqlite://"):
        return Path(url.removeprefix("sqlite://"))
    if url.startswith("sqlite:"):
        return Path(url.removeprefix("sqlite:"))
    if "://" in url:
        raise ConfigError(
            f"unsupported database URL {redact(url)!r}: use postgresql://… or a SQLite file path"
        )
    return Path(url)


@dataclass
class Backend:
    """The one database of a process: enduro's tables (`db`), LangGraph's checkpoints
    (`saver`) and the outage policy both retry through."""

    url: str
    db: Database
    saver: BaseCheckpointSaver[Any]

    @property
    def outage(self) -> OutagePolicy:
        """The retry policy of every call to this database."""
        return self.db.outage

    async def migrate(self) -> int:
        """Create or upgrade the saver's tables and enduro's (and, on PostgreSQL, the job
        queue's); returns enduro's schema version."""
        if not isinstance(self.db, PostgresDatabase):
            await self.saver.setup()  # type: ignore[attr-defined]
            return await migrate(self.db)
        if await self._postgres_current():
            return SCHEMA_VERSION
        await _setup_saver(self.saver)
        version = await migrate(self.db)
        await ensure_queue_schema(self.url)
        return version

    async def _postgres_current(self) -> bool:
        """True when every migration (LangGraph's, enduro's, the queue's) is in: one query
        instead of a migration pass for every command and every worker job."""
        try:
            row = await self.db.fetchone(
                "SELECT (SELECT max(version) FROM enduro_schema_version) AS enduro,"
                " (SELECT max(v) FROM checkpoint_migrations) AS langgraph,"
                " to_regclass('procrastinate_jobs') IS NOT NULL AS queue"
            )
        except psycopg.errors.UndefinedTable:
            return False
        return bool(
            row
            and row["queue"]
            and row["enduro"] is not None
            and row["enduro"] >= SCHEMA_VERSION
            and row["langgraph"] == len(self.saver.MIGRATIONS) - 1  # type: ignore[attr-defined]
        )

    def saver_for(self, lease: Lease | None) -> BaseCheckpointSaver[Any]:
        """The saver a run writes through: on PostgreSQL one fenced by the run's lease
        (see `fencing`); SQLite's writes are serialised by the file's write lock and its
        saver is used as is."""
        if isinstance(self.saver, FencedPostgresSaver):
            return self.saver.for_lease(lease)
        return self.saver


async def _setup_saver(saver: Any) -> None:
    """LangGraph's setup() on PostgreSQL. Workers starting together all run it, and it is
    not safe concurrently (two processes insert the same version row); the loser retries,
    and then finds the migrations in. No lock: a lock held across awaits stays held if its
    task is abandoned, and then every other process waits forever."""
    for attempt in (1, 2, 3):
        try:
            await saver.setup()
            return
        except (
            psycopg.errors.UniqueViolation,
            psycopg.errors.DuplicateObject,
            psycopg.errors.DuplicateTable,
        ):
            if attempt == 3:
                raise
            await asyncio.sleep(0.2 * attempt)


@asynccontextmanager
async def open_backend(
    url: str,
    *,
    create: bool = True,
    migrate_schema: bool = True,
    outage: OutagePolicy | None = None,
    pool_size: int = 10,
) -> AsyncIterator[Backend]:
    """Open checkpoints and enduro tables on one database.

    Args:
        url: `postgresql://…`, `sqlite:…` or a SQLite file path.
        create: False for read-only commands: a SQLite file that does not exist is an error
            rather than a new empty database.
        migrate_schema: create or upgrade the tables first.
        outage: how long calls wait out an unreachable (or locked) database; default
            ENDURO_DB_OUTAGE_TIMEOUT, else 60 s (so `langgraph dev`'s saver honours it too).
        pool_size: most PostgreSQL connections of the pool (a worker needs about two per
            thread it advances at once).

    Raises:
        ConfigError: a bad URL, a missing SQLite file with `create=False`, or a PostgreSQL
            server that refuses the first connection; ENDURO_DB_OUTAGE_TIMEOUT is not a
            number of seconds.
    """
    outage = outage or OutagePolicy(timeout=outage_seconds_from_env())
    if is_postgres(url):
        async with _postgres(url, outage, pool_size) as backend:
            if migrate_schema:
                await backend.migrate()
            yield backend
        return
    path = sqlite_path(url)
    if not path.exists():
        if not create:
            raise ConfigError(
                f"no enduro database at {path}: start a run first, or point --db / "
                "ENDURO_DATABASE_URL at the database that holds the thread"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot create the directory of the SQLite database {str(path)!r}: {exc}; "
                "point --db / ENDURO_DATABASE_URL at a place you can write to"
            ) from exc
    async with sqlite_connection(str(path)) as saver_conn, sqlite_connection(str(path)) as conn:
        backend = Backend(
            url, SqliteDatabase(conn, outage), ResilientSqliteSaver(saver_conn, outage)
        )
        if migrate_schema:
            await backend.migrate()
        yield backend


@asynccontextmanager
async def postgres_pool(
    url: str, *, max_size: int = 10, outage: OutagePolicy | None = None
) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A pool as AsyncPostgresSaver needs it, that also survives dropped connections.

    Args:
        url: the `postgresql://…` URL.
        max_size: most connections open at once.
        outage: sets how long one request waits for a connection (`attempt_seconds`);
            the policy's retries do the rest of the waiting.

    Raises:
        ConfigError: the server refuses the first connection.
    """
    outage = outage or OutagePolicy()
    pool: AsyncConnectionPool[Any] = CheckedPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        # The saver requires autocommit and dict rows; prepare_threshold=0 keeps it working
        # behind PgBouncer in transaction mode. Keepalives notice a peer that vanished
        # without closing the connection.
        kwargs={
            "autocommit": True,
            "row_factory": dict_row,
            "prepare_threshold": 0,
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
        # CheckedPool checks every connection it hands out (no `check=` here: see there).
        timeout=outage.attempt_seconds,
        max_idle=300,
        reconnect_timeout=POOL_RECONNECT_SECONDS,
    )
    try:
        # One direct attempt first: it fails at once with the server's own reason, where the
        # pool would keep retrying until its timeout and then report only that.
        probe = await psycopg.AsyncConnection.connect(url, connect_timeout=10)
        await probe.close()
        await pool.open(wait=True, timeout=30)
    except Exception as exc:
        await pool.close()
        raise ConfigError(
            f"cannot connect to PostgreSQL at {redact(url)}: {redact(str(exc))}. Is the server "
            "running and the URL in --db / ENDURO_DATABASE_URL right?"
        ) from exc
    try:
        yield pool
    finally:
        await pool.close()


@asynccontextmanager
async def _postgres(url: str, outage: OutagePolicy, pool_size: int) -> AsyncIterator[Backend]:
    async with postgres_pool(url, max_size=pool_size, outage=outage) as pool:
        yield Backend(url, PostgresDatabase(pool, outage), FencedPostgresSaver(pool, outage))


@asynccontextmanager
async def open_database(url: str, outage: OutagePolicy | None = None) -> AsyncIterator[Database]:
    """enduro's tables on `url`, migrated, without a checkpoint saver.

    For code that needs the tables but not the checkpoints (the budget ledger under
    `langgraph dev`, whose server brings its own saver): a small pool on PostgreSQL, and a
    SQLite file created when missing.

    Args:
        url: `postgresql://…`, `sqlite:…` or a SQLite file path.
        outage: How long calls wait out an unreachable database; default `OutagePolicy()`.

    Yields:
        The open database, closed when the block exits.

    Raises:
        ConfigError: A bad URL, or a PostgreSQL server that refuses the first connection.
    """
    outage = outage or OutagePolicy()
    db: Database
    if is_postgres(url):
        async with postgres_pool(url, max_size=4, outage=outage) as pool:
            db = PostgresDatabase(pool, outage)
            await migrate(db)
            yield db
        return
    path = sqlite_path(url)
    # Off the event loop: `langgraph dev` rejects blocking file-system calls in a node.
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    async with sqlite_connection(str(path)) as conn:
        db = SqliteDatabase(conn, outage)
        await migrate(db)
        yield db
