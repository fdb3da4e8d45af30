"""The `enduro_threads` table: what a thread is, who runs it, and whether it is alive.

The checkpoint holds the agent's state; this row holds what the runner and the CLI need
without loading a checkpoint: goal, context (limits), lifecycle status and a lease.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from enduro.context import EnduroContext
from enduro.errors import ConfigError, StopReason
from enduro.names import parse_thread_ref
from enduro.storage import Backend, Database, Row
from enduro.storage.fencing import Lease
from enduro.storage.leases import STALE_SECONDS, owner_alive, this_owner


@dataclass(frozen=True)
class ThreadRow:
    thread_id: str
    goal: str
    status: str
    stop_reason: str | None
    context: EnduroContext
    created_at: float
    updated_at: float
    owner: str | None
    heartbeat_at: float | None
    cancel_requested: bool
    segments: int
    name: str | None = None
    """The name the thread was created with (`--thread-id nightly-report-7`), or None."""
    lease_epoch: int = 0

    @classmethod
    def from_row(cls, row: Row) -> ThreadRow:
        return cls(
            thread_id=row["thread_id"],
            goal=row["goal"],
            status=row["status"],
            stop_reason=row["stop_reason"],
            context=EnduroContext.from_dict(json.loads(row["context"])),
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            owner=row["owner"],
            heartbeat_at=row["heartbeat_at"],
            cancel_requested=bool(row["cancel_requested"]),
            segments=int(row["segments"]),
            name=row.get("name"),
            lease_epoch=int(row.get("lease_epoch") or 0),
        )

    def effective_status(self, now: float | None = None) -> tuple[str, str | None]:
        """Status as users should see it: a `running` row whose owner died is `paused`
        with stop_reason `crashed`, because it is resumable from its last checkpoint."""
        if self.status == "running" and not owner_alive(self.owner, self.heartbeat_at, now):
            return "paused", StopReason.CRASHED.value
        return self.status, self.stop_reason


_COLUMNS = (
    "thread_id, goal, status, stop_reason, context, created_at, updated_at, owner, "
    "heartbeat_at, cancel_requested, segments, name, lease_epoch"
)


async def create_thread(
    db: Database, thread_id: str, goal: str, context: EnduroContext, name: str | None = None
) -> None:
    """Insert the row of a new thread (status `paused`: nothing has run yet).

    Args:
        db: enduro's tables.
        thread_id: the new thread's id (a UUID; `enduro.names` maps a name to one).
        goal: the user's goal.
        context: the run's knobs and limits.
        name: the name the thread was given, if any.
    """
    now = time.time()
    await db.execute(
        "INSERT INTO enduro_threads (thread_id, goal, status, context, created_at, updated_at,"
        " name) VALUES (%s, %s, 'paused', %s, %s, %s, %s)",
        (thread_id, goal, json.dumps(context.to_dict()), now, now, name),
    )


async def resolve_thread_id(db: Database, ref: str) -> str:
    """The thread id to use for `ref`, a thread id or a name (see `enduro.names`).

    A row whose id or name is `ref` wins (ids stored before names existed need not be
    UUIDs); otherwise a UUID is itself and a name is its uuid5 (a thread that exists only
    as checkpoints, or none at all: the caller then reports it unknown).
    """
    found = await find_thread_id(db, ref)
    if found is not None:
        return found
    try:
        return parse_thread_ref(ref).thread_id
    except ConfigError:
        return ref


async def find_thread_id(db: Database, ref: str) -> str | None:
    """The id of the thread `ref` names: a thread id (UUID, or a non-UUID id stored before
    names existed) or a name. None when no row matches."""
    row = await db.fetchone(
        "SELECT thread_id FROM enduro_threads WHERE thread_id = %s OR name = %s"
        " ORDER BY CASE WHEN thread_id = %s THEN 0 ELSE 1 END LIMIT 1",
        (ref, ref, ref),
    )
    return str(row["thread_id"]) if row else None


async def get_thread(db: Database, thread_id: str) -> ThreadRow | None:
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM enduro_threads WHERE thread_id = %s", (thread_id,)
    )
    return ThreadRow.from_row(row) if row else None


async def list_threads(db: Database, limit: int = 100) -> list[ThreadRow]:
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM enduro_threads ORDER BY updated_at DESC LIMIT %s", (limit,)
    )
    return [ThreadRow.from_row(r) for r in rows]


async def claim(db: Database, thread_id: str, context: EnduroContext) -> Lease | None:
    """Take the lease to run the thread; None if a live process holds it already.

    The compare-and-set happens in one UPDATE, so two workers racing for one thread cannot
    both win. Each claim bumps `lease_epoch`: the returned Lease fences this process's
    writes (see `storage.fencing`), so a former holder that wakes up later cannot write."""
    now = time.time()
    row = await get_thread(db, thread_id)
    if row is None:
        return None
    if row.status == "running" and owner_alive(row.owner, row.heartbeat_at, now):
        return None
    lease = Lease(thread_id, this_owner(), row.lease_epoch + 1)
    changed = await db.execute(
        "UPDATE enduro_threads SET status = 'running', stop_reason = NULL, owner = %s,"
        " heartbeat_at = %s, updated_at = %s, context = %s, cancel_requested = 0,"
        " segments = segments + 1, lease_epoch = %s WHERE thread_id = %s AND updated_at = %s"
        " AND lease_epoch = %s",
        (
            lease.owner,
            now,
            now,
            json.dumps(context.to_dict()),
            lease.epoch,
            thread_id,
            row.updated_at,
            row.lease_epoch,
        ),
    )
    return lease if changed == 1 else None


async def heartbeat(db: Database, thread_id: str, lease: Lease | None = None) -> bool:
    """Renew the lease; False when it is no longer this process's (taken over)."""
    now = time.time()
    if lease is None:
        changed = await db.execute(
            "UPDATE enduro_threads SET heartbeat_at = %s WHERE thread_id = %s AND owner = %s",
            (now, thread_id, this_owner()),
        )
    else:
        changed = await db.execute(
            "UPDATE enduro_threads SET heartbeat_at = %s WHERE thread_id = %s AND owner = %s"
            " AND lease_epoch = %s",
            (now, thread_id, lease.owner, lease.epoch),
        )
    return changed == 1


async def release(
    db: Database,
    thread_id: str,
    status: str,
    stop_reason: str | None,
    lease: Lease | None = None,
) -> bool:
    """Record the segment's outcome and give up the lease. With `lease`, only if it is
    still this process's (a holder that lost it must not overwrite the new one's row)."""
    now = time.time()
    sql = (
        "UPDATE enduro_threads SET status = %s, stop_reason = %s, owner = NULL,"
        " heartbeat_at = NULL, updated_at = %s WHERE thread_id = %s"
    )
    params: tuple[object, ...] = (status, stop_reason, now, thread_id)
    if lease is not None:
        sql += " AND owner = %s AND lease_epoch = %s"
        params += (lease.owner, lease.epoch)
    return await db.execute(sql, params) == 1


async def mark_queued(db: Database, thread_id: str, context: EnduroContext | None = None) -> bool:
    """Status `queued` for a thread handed to the workers; False if a process runs it."""
    sql = "UPDATE enduro_threads SET status = 'queued', stop_reason = NULL, updated_at = %s"
    params: tuple[object, ...] = (time.time(),)
    if context is not None:
        sql += ", context = %s"
        params += (json.dumps(context.to_dict()),)
    # A `running` row whose heartbeat stopped belongs to a dead process: queue it anyway.
    sql += " WHERE thread_id = %s AND NOT (status = 'running' AND heartbeat_at > %s)"
    return await db.execute(sql, (*params, thread_id, time.time() - STALE_SECONDS)) == 1


async def request_cancel(db: Database, thread_id: str) -> None:
    await db.execute(
        "UPDATE enduro_threads SET cancel_requested = 1, updated_at = %s WHERE thread_id = %s",
        (time.time(), thread_id),
    )


async def is_cancel_requested(db: Database, thread_id: str) -> bool:
    row = await db.fetchone(
        "SELECT cancel_requested FROM enduro_threads WHERE thread_id = %s", (thread_id,)
    )
    return bool(row and row["cancel_requested"])


async def load_thread(backend: Backend, thread_id: str) -> ThreadRow | None:
    """The thread's row; a thread that exists only as checkpoints (started from `langgraph
    dev` or Studio, which know nothing of enduro's table) is adopted with default knobs, so
    the CLI can show and resume it."""
    row = await get_thread(backend.db, thread_id)
    if row is not None:
        return row
    found = await backend.saver.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    )
    goal = found.checkpoint["channel_values"].get("goal") if found else None
    if not found or not isinstance(goal, str):
        return None
    status = found.checkpoint["channel_values"].get("status") or "paused"
    now = time.time()
    await backend.db.execute(
        "INSERT INTO enduro_threads (thread_id, goal, status, stop_reason, context, created_at,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id) DO NOTHING",
        (
            thread_id,
            goal,
            "paused" if status == "running" else status,
            found.checkpoint["channel_values"].get("stop_reason"),
            json.dumps(EnduroContext().to_dict()),
            now,
            now,
        ),
    )
    return await get_thread(backend.db, thread_id)


async def adopt_orphans(backend: Backend, limit: int = 100) -> None:
    """Adopt threads that have checkpoints but no row (see `load_thread`)."""
    rows = await backend.db.fetchall(
        "SELECT DISTINCT thread_id FROM checkpoints WHERE checkpoint_ns = '' AND thread_id NOT IN"
        " (SELECT thread_id FROM enduro_threads) LIMIT %s",
        (limit,),
    )
    for r in rows:
        await load_thread(backend, r["thread_id"])
