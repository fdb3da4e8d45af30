"""Every enduro table, as an ordered list of migrations whose index is the schema version.

Invariants:

- `MIGRATIONS[v]` brings a database from version v-1 to version v. Once released, an entry
  never changes meaning and nothing is inserted before it: a new table or column is a new
  entry at the end. (LangGraph's own savers keep their tables the same way.)
- Each statement is valid on PostgreSQL and SQLite alike, and idempotent (`IF NOT EXISTS`),
  so re-running a migration that a crash interrupted is harmless.
- `enduro_schema_version` holds one row per applied version; the highest is the database's
  version. Databases created before this list existed have rows 1-5 from the same numbering
  (threads, ledger, outbox, keyset index, side effects) and no row 0, so they map onto it
  unchanged.
- `migrate` applies all pending versions in one transaction under a lock (an advisory lock
  on PostgreSQL, the write lock on SQLite), so two processes starting at once neither both
  apply a version nor see a half-built schema; the transaction is retried whole while the
  database is unreachable (`Database.transact`).

LangGraph's checkpoint tables are not here: their savers own them (`Backend.migrate`).
"""

from __future__ import annotations

import time
from typing import NamedTuple

from enduro.errors import DatabaseUnreachable
from enduro.storage.database import Database, Transaction

_MIGRATION_LOCK = 870412
"""Advisory lock namespace of migrations (a one-bigint key, apart from the ledger's)."""


class Migration(NamedTuple):
    """One schema version: its name (recorded in `enduro_schema_version`) and its DDL."""

    name: str
    statements: tuple[str, ...]


SCHEMA_VERSION_TABLE = """CREATE TABLE IF NOT EXISTS enduro_schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""

# What the runner and the CLI need of a thread without loading a checkpoint: its goal, its
# context (limits), its lifecycle status and the lease of the process running it.
THREADS = (
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
)

# The spend ledger (one row per model call, reserved before and settled after; amounts in
# nano-USD) and the run clock (active seconds, and the earliest time the provider allowed
# the next call). See `enduro.budgets.ledger`.
LEDGER = (
    """CREATE TABLE IF NOT EXISTS enduro_spend (
        call_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        node TEXT NOT NULL,
        model TEXT NOT NULL,
        state TEXT NOT NULL,
        priced INTEGER NOT NULL DEFAULT 1,
        calls INTEGER NOT NULL DEFAULT 1,
        reserved_nusd BIGINT NOT NULL,
        reserved_tokens BIGINT NOT NULL,
        settled_nusd BIGINT,
        settled_tokens BIGINT,
        input_tokens BIGINT,
        cached_input_tokens BIGINT,
        output_tokens BIGINT,
        reasoning_tokens BIGINT,
        detail TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        settled_at DOUBLE PRECISION
    )""",
    "CREATE INDEX IF NOT EXISTS enduro_spend_thread ON enduro_spend (thread_id, created_at)",
    """CREATE TABLE IF NOT EXISTS enduro_clock (
        thread_id TEXT PRIMARY KEY,
        active_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
        not_before DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
)

# The webhook outbox (see `enduro.webhooks.outbox`):
# - enduro_webhook_seq: the last sequence number handed out per thread. Allocating from a
#   counter row (an upsert that locks it) rather than MAX(seq) + 1 keeps two writers apart
#   and never reuses a number, even after old events are deleted.
# - enduro_webhook_events: one row per event, with the exact JSON body that is signed and
#   sent, so every retry sends the same bytes under the same webhook-id. dedupe_key makes
#   events derived from the graph's state exactly-once per thread even when a crash makes a
#   node run again.
# - enduro_webhook_endpoints: the endpoints a thread delivers to, with a fingerprint of the
#   signing secret (never the secret), the endpoint's state (active / disabled after a 410)
#   and the lease that keeps one sender at a time on a (thread, endpoint) chain.
# - enduro_webhook_deliveries: one row per (event, endpoint): pending, delivered or dead,
#   with attempts, the next attempt time, the last error and retry_from, the start of the
#   current retry schedule (the event's creation, or when `webhooks retry` revived it).
WEBHOOK_OUTBOX = (
    """CREATE TABLE IF NOT EXISTS enduro_webhook_seq (
        thread_id TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS enduro_webhook_events (
        thread_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        dedupe_key TEXT,
        body TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, seq)
    )""",
    # NULL keys (heartbeats) are distinct from each other on both engines.
    "CREATE UNIQUE INDEX IF NOT EXISTS enduro_webhook_events_dedupe"
    " ON enduro_webhook_events (thread_id, dedupe_key)",
    """CREATE TABLE IF NOT EXISTS enduro_webhook_endpoints (
        thread_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        url TEXT NOT NULL,
        secret_fingerprint TEXT,
        state TEXT NOT NULL,
        disabled_reason TEXT,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, endpoint_id)
    )""",
    """CREATE TABLE IF NOT EXISTS enduro_webhook_deliveries (
        thread_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        retry_from DOUBLE PRECISION NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        updated_at DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION,
        PRIMARY KEY (thread_id, endpoint_id, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS enduro_webhook_deliveries_state"
    " ON enduro_webhook_deliveries (state, thread_id, endpoint_id, seq)",
)

# The dashboard pages threads newest first on (created_at, thread_id), with or without a
# status filter: each page is an index range scan, whatever the count.
THREAD_LIST_KEYSET = (
    "CREATE INDEX IF NOT EXISTS enduro_threads_created ON enduro_threads (created_at, thread_id)",
    "CREATE INDEX IF NOT EXISTS enduro_threads_status_created"
    " ON enduro_threads (status, created_at, thread_id)",
)

# The side-effect journal and the first-seen time of each interrupt (see `enduro.hitl`).
SIDE_EFFECTS_AND_INTERRUPTS = (
    # One row per side-effecting tool call: written (`started`) before the call runs and
    # completed (`done`, with the result) after it, so a resume can tell "never ran" from
    # "ran, outcome unknown" from "ran, result known".
    """CREATE TABLE IF NOT EXISTS enduro_effects (
        thread_id TEXT NOT NULL,
        tool_call_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        args_sha256 TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        result TEXT,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        PRIMARY KEY (thread_id, tool_call_id)
    )""",
    # LangGraph re-raises a pending interrupt each time its task runs again, so the time it
    # was first raised is kept here: --approval-timeout counts from it.
    """CREATE TABLE IF NOT EXISTS enduro_interrupts (
        thread_id TEXT NOT NULL,
        interrupt_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        tool TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, interrupt_id)
    )""",
)

# A named thread's id is uuid5 of its name (`enduro.names`); the name is kept to be shown and
# looked up, one thread per name. SQLite has no ADD COLUMN IF NOT EXISTS: the statement is
# safe all the same because it commits with its version row or not at all (`migrate`).
THREAD_NAMES = (
    "ALTER TABLE enduro_threads ADD COLUMN name TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS enduro_threads_name ON enduro_threads (name)",
)

# Workers (see `enduro.workers`, docs/workers.md):
# - lease_epoch: bumped by every claim of a thread; every fenced write (a checkpoint, a ledger
#   reservation, an outbox event) checks it in its own transaction (`storage.fencing`).
#   Applied once under the migration lock (ADD COLUMN has no IF NOT EXISTS on SQLite).
# - enduro_workers: host, pid and concurrency of each live `enduro worker`, beside
#   procrastinate's own worker rows (which hold only an id and a heartbeat).
LEASE_EPOCH_AND_WORKERS = (
    "ALTER TABLE enduro_threads ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0",
    """CREATE TABLE IF NOT EXISTS enduro_workers (
        worker_id BIGINT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        concurrency INTEGER NOT NULL,
        started_at DOUBLE PRECISION NOT NULL
    )""",
)

MIGRATIONS: list[Migration] = [
    Migration("schema version", (SCHEMA_VERSION_TABLE,)),
    Migration("threads", THREADS),
    Migration("spend ledger", LEDGER),
    Migration("webhook outbox", WEBHOOK_OUTBOX),
    Migration("thread list keyset", THREAD_LIST_KEYSET),
    Migration("side effects and interrupts", SIDE_EFFECTS_AND_INTERRUPTS),
    Migration("thread names", THREAD_NAMES),
    Migration("lease epoch and workers", LEASE_EPOCH_AND_WORKERS),
]
"""The schema's history: entry v brings a database to version v. Append only."""

SCHEMA_VERSION = len(MIGRATIONS) - 1
"""The version this code creates and expects."""


async def schema_version(db: Database | Transaction) -> int:
    """The database's schema version: -1 when none was recorded yet.

    Raises:
        Exception: The engine's own error when `enduro_schema_version` does not exist.
    """
    row = await db.fetchone("SELECT MAX(version) AS version FROM enduro_schema_version")
    return -1 if row is None or row["version"] is None else int(row["version"])


async def migrate(db: Database) -> int:
    """Apply every migration the database has not had yet; safe to run at any time.

    Args:
        db: The database to bring up to `SCHEMA_VERSION`.

    Returns:
        The schema version now in force (higher than `SCHEMA_VERSION` only when a newer
        enduro already upgraded this database).
    """
    try:
        # Outside the lock and read-only: a database that is up to date (every `enduro
        # status`) never waits for a lock.
        version = await schema_version(db)
    except DatabaseUnreachable:
        raise
    except Exception:
        # No version table: a new database. Any other error recurs below, under the lock.
        version = -1
    if version >= SCHEMA_VERSION:
        return version

    async def upgrade(tx: Transaction) -> int:
        await db.lock(tx, _MIGRATION_LOCK)
        await tx.execute(SCHEMA_VERSION_TABLE)
        # Read again under the lock: another process may have migrated meanwhile.
        found = await schema_version(tx)
        for number in range(found + 1, len(MIGRATIONS)):
            await _apply(tx, number)
        return max(found, SCHEMA_VERSION)

    # One transaction, retried whole while the database is unreachable: the DDL is
    # idempotent and the version rows are upserts, so a retry after a lost COMMIT is harmless.
    return await db.transact(upgrade, "migration")


async def _apply(tx: Transaction, number: int) -> None:
    migration = MIGRATIONS[number]
    for statement in migration.statements:
        await tx.execute(statement)
    await tx.execute(
        "INSERT INTO enduro_schema_version (version, name, applied_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (version) DO NOTHING",
        (number, migration.name, time.time()),
    )
