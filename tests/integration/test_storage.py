"""The database layer on both engines: migrations, leases, retention, dropped connections."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import pytest

from enduro import threads
from enduro.context import ContextOverrides, EnduroContext
from enduro.runner import advance_thread, create_run
from enduro.storage import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Database,
    migrate,
    open_backend,
    open_database,
)
from enduro.storage.migrations import schema_version
from fakellm import ScriptedLLM


async def test_migrate_is_idempotent(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        first = await backend.migrate()
        assert await backend.migrate() == first == SCHEMA_VERSION == len(MIGRATIONS) - 1
        rows = await backend.db.fetchall("SELECT version FROM enduro_schema_version")
        assert sorted(r["version"] for r in rows) == list(range(len(MIGRATIONS)))


# What the code before the ordered migration list created: the same table, rows 1-5 (threads,
# ledger, outbox, keyset index, side effects) stamped with applied_at 0, and no row 0.
_LEGACY_VERSION_TABLE = """CREATE TABLE enduro_schema_version (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"""


async def _legacy_schema(db: Database, versions: int) -> None:
    statements = [_LEGACY_VERSION_TABLE]
    for version in range(1, versions + 1):
        name, ddl = MIGRATIONS[version]
        statements += [
            *ddl,
            "INSERT INTO enduro_schema_version (version, name, applied_at)"
            f" VALUES ({version}, '{name}', 0)",
        ]
    await db.script(statements)


@pytest.mark.parametrize("legacy_version", [1, 5])
async def test_a_database_of_the_previous_layout_upgrades_in_place(
    db_url: str, legacy_version: int
) -> None:
    async with open_backend(db_url, migrate_schema=False) as backend:
        await _legacy_schema(backend.db, legacy_version)
        await backend.db.execute(
            "INSERT INTO enduro_threads (thread_id, goal, status, context, created_at,"
            " updated_at) VALUES ('t-old', 'old goal', 'paused', '{}', 1, 1)"
        )
        assert await schema_version(backend.db) == legacy_version
    async with open_backend(db_url) as backend:
        assert await schema_version(backend.db) == SCHEMA_VERSION
        row = await threads.get_thread(backend.db, "t-old")
        assert row is not None and row.goal == "old goal", "the upgrade lost a row"
        # The tables of the versions it lacked exist now.
        assert await backend.db.fetchall("SELECT * FROM enduro_webhook_deliveries") == []
        assert await backend.db.fetchall("SELECT * FROM enduro_spend") == []
        rows = await backend.db.fetchall("SELECT version FROM enduro_schema_version")
        applied = sorted(r["version"] for r in rows)
        assert applied == list(range(1, SCHEMA_VERSION + 1)), "a version was applied twice"


async def test_concurrent_first_opens_migrate_once(db_url: str) -> None:
    async def open_and_migrate() -> int:
        async with open_database(db_url) as db:
            return await migrate(db)

    versions = await asyncio.gather(*(open_and_migrate() for _ in range(4)))
    assert versions == [SCHEMA_VERSION] * 4
    async with open_database(db_url) as db:
        rows = await db.fetchall("SELECT version FROM enduro_schema_version")
        assert sorted(r["version"] for r in rows) == list(range(len(MIGRATIONS)))


async def test_lease_cannot_be_taken_twice(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        tid = await create_run(backend, "g", EnduroContext())
        assert await threads.claim(backend.db, tid, EnduroContext())
        assert not await threads.claim(backend.db, tid, EnduroContext()), "live lease stolen"
        await threads.release(backend.db, tid, "paused", "signal")
        assert await threads.claim(backend.db, tid, EnduroContext())


async def _checkpoint_count(backend: Any, tid: str) -> int:
    row = await backend.db.fetchone(
        "SELECT COUNT(*) AS n FROM checkpoints WHERE thread_id = %s", (tid,)
    )
    return int(row["n"])


async def test_retention_keeps_a_window_and_the_thread_stays_resumable(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.steps = [f"Step {i}" for i in range(8)]
    async with open_backend(db_url) as backend:
        tid = await create_run(backend, "g", EnduroContext(max_iterations=5))
    first = await advance_thread(tid, database_url=db_url, keep_checkpoints=3)
    assert first.stop_reason == "max_iterations"
    async with open_backend(db_url) as backend:
        assert await _checkpoint_count(backend, tid) == 3
        if backend.db.dialect == "postgres":
            # No blob is left that no kept checkpoint refers to.
            orphans = await backend.db.fetchone(
                "SELECT COUNT(*) AS n FROM checkpoint_blobs b WHERE thread_id = %s AND NOT "
                "EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id AND "
                "c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
                (tid,),
            )
            assert orphans is not None and orphans["n"] == 0
    second = await advance_thread(
        tid, database_url=db_url, overrides=ContextOverrides(max_iterations=100), keep_checkpoints=3
    )
    assert second.status == "completed"
    assert llm_env.count("plan") == 1
    assert all(llm_env.count("review", f"s{i}") == 1 for i in range(1, 9))


async def test_pool_survives_dropped_connections(
    pg_url: str, llm_env: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = f"enduro_{uuid.uuid4().hex[:8]}"
    url = f"{pg_url}&application_name={app}"
    async with open_backend(url) as backend:
        tid = await create_run(backend, "g", EnduroContext())
    killed: list[int] = []

    def drop_all_connections(_chunk: dict[str, Any]) -> None:
        # What a server restart, a failover or an idle-killing NAT does to a pool.
        with psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (app,),
            ).fetchall()
            killed.append(len(rows))

    outcome = await advance_thread(tid, database_url=url, on_update=drop_all_connections)
    assert outcome.status == "completed"
    assert sum(killed) > 0, "the test did not drop any connection"
