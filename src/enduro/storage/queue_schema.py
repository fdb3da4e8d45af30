"""procrastinate's tables, types and functions: the job queue of `enduro worker`, in the
same PostgreSQL database as everything else.

procrastinate ships its schema as one SQL text (not idempotent); it is applied once, when
`procrastinate_jobs` is missing, under an advisory lock so that processes migrating at once
create it once. Its own connection: the text is many statements, which the pool's
connections (every statement prepared, for PgBouncer) cannot send.
"""

from __future__ import annotations

import psycopg
from procrastinate.schema import SchemaManager

_SCHEMA_LOCK = 870413
"""Advisory lock key of this creation (apart from migrations' and the ledger's)."""


async def ensure_queue_schema(url: str) -> bool:
    """Create procrastinate's schema on `url` when missing; True if it did."""
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cur.fetchone()
        if row and row[0]:
            return False
        await conn.execute(SchemaManager.get_schema())
    return True
