"""Retention: keep the latest checkpoints of a thread and delete the superseded ones.

The saver's own `prune(strategy="keep_latest")` keeps exactly one checkpoint and exists only
for PostgreSQL; enduro keeps a window (the latest N, for time travel and debugging) on both
engines. The graph uses no DeltaChannel, so deleting ancestors loses nothing the kept
checkpoints need.
"""

from __future__ import annotations

from enduro.storage import Database

DEFAULT_KEEP_CHECKPOINTS = 20
"""Checkpoints kept per thread unless the caller (`--keep-checkpoints`) says otherwise."""


async def prune_thread(db: Database, thread_id: str, keep: int) -> None:
    """Delete all but the `keep` newest root checkpoints of `thread_id` (and their writes).

    Checkpoint ids are time-ordered (uuid6), so ordering by id is ordering by age.
    """
    if keep < 1:
        raise ValueError(f"retention window must keep at least 1 checkpoint, got {keep}")
    if db.dialect == "postgres":
        await _prune_postgres(db, thread_id, keep)
    else:
        await _prune_sqlite(db, thread_id, keep)


_KEPT = (
    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
    " ORDER BY checkpoint_id DESC LIMIT %s"
)


async def _prune_sqlite(db: Database, thread_id: str, keep: int) -> None:
    for table in ("writes", "checkpoints"):
        await db.execute(
            f"DELETE FROM {table} WHERE thread_id = %s AND checkpoint_ns = ''"
            f" AND checkpoint_id NOT IN ({_KEPT})",
            (thread_id, thread_id, keep),
        )


async def _prune_postgres(db: Database, thread_id: str, keep: int) -> None:
    kept = await db.fetchall(_KEPT, (thread_id, keep))
    ids = [r["checkpoint_id"] for r in kept]
    if not ids:
        return
    params = (thread_id, ids)
    await db.execute(
        "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_ns = ''"
        " AND NOT (checkpoint_id = ANY(%s))",
        params,
    )
    await db.execute(
        "DELETE FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
        " AND NOT (checkpoint_id = ANY(%s))",
        params,
    )
    # Blobs are shared between checkpoints by channel version; drop the ones no kept
    # checkpoint refers to any more.
    await db.execute(
        "DELETE FROM checkpoint_blobs b WHERE b.thread_id = %s AND b.checkpoint_ns = ''"
        " AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.thread_id = b.thread_id"
        " AND c.checkpoint_ns = b.checkpoint_ns"
        " AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version)",
        (thread_id,),
    )
