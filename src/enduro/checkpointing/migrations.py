"""enduro's own tables, versioned. Each migration is idempotent SQL valid on both engines.

Budgets (the spend ledger) and webhooks (the outbox) append their migrations here; a number,
once released, never changes meaning.
"""

from __future__ import annotations

from enduro.budgets.schema import LEDGER_SCHEMA
from enduro.checkpointing.db import Database
from enduro.hitl.schema import HITL_SCHEMA
from enduro.webhooks.schema import WEBHOOK_OUTBOX

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "threads",
        [
            """CREATE TABLE IF NOT EXISTS enduro_threads (
                thread_id TEXT PRIMARY KEY,
                goal TEXT NOT NULL,
                status TEXT NOT NULL,
                stop_reason TEXT,
                context TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                owner TEXT,
                heartbeat_at DOUBLE PRECISION,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                segments INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX IF NOT EXISTS enduro_threads_updated ON enduro_threads (updated_at)",
        ],
    ),
    (2, "spend ledger", LEDGER_SCHEMA),
    (3, "webhook outbox", WEBHOOK_OUTBOX),
    (
        4,
        "thread list keyset",
        [
            # The dashboard pages threads newest first on (created_at, thread_id), with or
            # without a status filter: each page is an index range scan, whatever the count.
            "CREATE INDEX IF NOT EXISTS enduro_threads_created"
            " ON enduro_threads (created_at, thread_id)",
            "CREATE INDEX IF NOT EXISTS enduro_threads_status_created"
            " ON enduro_threads (status, created_at, thread_id)",
        ],
    ),
    (5, "side effects and interrupts", HITL_SCHEMA),
]


async def migrate(db: Database) -> int:
    """Apply every migration not yet recorded; returns the schema version now in force."""
    await db.script(
        [
            """CREATE TABLE IF NOT EXISTS enduro_schema_version (
                version INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at DOUBLE PRECISION NOT NULL
            )"""
        ]
    )
    rows = await db.fetchall("SELECT version FROM enduro_schema_version")
    done = {int(r["version"]) for r in rows}
    for version, name, statements in MIGRATIONS:
        if version in done:
            continue
        lock = ["SELECT pg_advisory_xact_lock(870412)"] if db.dialect == "postgres" else []
        record = (
            "INSERT INTO enduro_schema_version (version, name, applied_at) "
            f"VALUES ({version}, '{name}', 0) ON CONFLICT (version) DO NOTHING"
        )
        await db.script([*lock, *statements, record])
    return max(v for v, _, _ in MIGRATIONS)
