"""Open the one database that holds everything: LangGraph's checkpoints and enduro's tables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from enduro._redact import redact
from enduro.checkpointing.db import Database, PostgresDatabase, SqliteDatabase, sqlite_connection
from enduro.checkpointing.migrations import migrate
from enduro.errors import ConfigError


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def sqlite_path(url: str) -> Path:
    """`sqlite:///abs`, `sqlite:rel` or a bare path -> the file path."""
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
    url: str
    db: Database
    saver: BaseCheckpointSaver[Any]

    async def migrate(self) -> int:
        await self.saver.setup()  # type: ignore[attr-defined]
        return await migrate(self.db)


@asynccontextmanager
async def open_backend(
    url: str, *, create: bool = True, migrate_schema: bool = True
) -> AsyncIterator[Backend]:
    """Open checkpoints and enduro tables on one database.

    `create=False` is for read-only commands: a SQLite file that does not exist is an error
    rather than a new empty database.
    """
    if is_postgres(url):
        async with _postgres(url) as backend:
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
        path.parent.mkdir(parents=True, exist_ok=True)
    async with sqlite_connection(str(path)) as saver_conn, sqlite_connection(str(path)) as conn:
        backend = Backend(url, SqliteDatabase(conn), AsyncSqliteSaver(saver_conn))
        if migrate_schema:
            await backend.migrate()
        yield backend


@asynccontextmanager
async def postgres_pool(url: str, *, max_size: int = 10) -> AsyncIterator[AsyncConnectionPool[Any]]:
    """A pool as AsyncPostgresSaver needs it, that also survives dropped idle connections."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        open=False,
        # The saver requires autocommit and dict rows; prepare_threshold=0 keeps it working
        # behind PgBouncer in transaction mode.
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        # Checked on checkout, so a connection the server or a NAT dropped while idle is
        # replaced instead of failing the next checkpoint write.
        check=AsyncConnectionPool.check_connection,
        max_idle=300,
        reconnect_timeout=60,
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
async def _postgres(url: str) -> AsyncIterator[Backend]:
    async with postgres_pool(url) as pool:
        yield Backend(url, PostgresDatabase(pool), AsyncPostgresSaver(pool))
