"""A waiting thread's pending interrupts.

Reading them, when each was first raised, and the answers `--approval-timeout` gives on a person's
behalf.

The pending interrupts come from LangGraph (`StateSnapshot.interrupts` of the latest
checkpoint), the truth Studio and the SDK see too. LangGraph raises a pending interrupt
again (with a fresh value) every time its task re-runs, so the time it was first raised is
kept in `enduro_interrupts`, and `created_at` and the timeout count from that.

The timeout is applied lazily, when the thread is next touched (`enduro resume`, `approve`,
`reject`, `answer`, or a worker advancing it): nothing runs while a thread waits, by design
(it holds no process), so nothing could act at the exact second; `enduro status` shows each
interrupt's `expires_at` meanwhile.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from enduro.hitl.interrupts import Pending, pending_of
from enduro.storage import Database

if TYPE_CHECKING:
    from enduro.storage import Backend


# LangGraph's channel names for task control writes (langgraph._internal._constants), read
# here so that `enduro status` need not import the graph machinery.
_INTERRUPT = "__interrupt__"
_CONTROL = frozenset({"__interrupt__", "__resume__", "__error__", "__error_source_node__"})
_NULL_TASK_ID = "00000000-0000-0000-0000-000000000000"


def interrupts_of_writes(pending_writes: Any) -> list[Any]:
    """The interrupts still waiting in a checkpoint's pending writes.

    LangGraph's rule (`langgraph.pregel._task_status`): a task's latest interrupt waits while the
    task has no output write; a task with output finished, whatever it asked on the way.
    """
    finished: set[str] = set()
    raised: dict[str, list[Any]] = {}
    for task_id, channel, value in pending_writes or ():
        if task_id == _NULL_TASK_ID:
            continue
        if channel == _INTERRUPT:
            raised.setdefault(task_id, []).extend(
                value if isinstance(value, list | tuple) else [value]
            )
        elif channel not in _CONTROL:
            finished.add(task_id)
    return [item for task, items in raised.items() if task not in finished for item in items]


async def thread_interrupts(backend: Backend, thread_id: str) -> list[Pending]:
    """The thread's pending interrupts (those of its latest checkpoint).

    Each comes with the time it was first raised; they are recorded as seen, so later sightings keep
    that time.
    """
    found = await backend.saver.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    )
    pending = pending_of(interrupts_of_writes(found.pending_writes if found else ()))
    if not pending:
        return []
    await record_seen(backend.db, thread_id, pending)
    return with_first_seen(pending, await first_seen(backend.db, thread_id))


async def record_seen(db: Database, thread_id: str, pending: list[Pending]) -> None:
    """Remember when each interrupt was first raised (later sightings keep the first)."""
    now = time.time()
    for item in pending:
        await db.execute(
            "INSERT INTO enduro_interrupts (thread_id, interrupt_id, kind, tool, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (thread_id, interrupt_id) DO NOTHING",
            (thread_id, item.id, item.kind, item.tool, _epoch(item.created_at) or now),
        )


async def first_seen(db: Database, thread_id: str) -> dict[str, float]:
    """When each of the thread's interrupts was first seen: `{interrupt_id: epoch seconds}`."""
    rows = await db.fetchall(
        "SELECT interrupt_id, created_at FROM enduro_interrupts WHERE thread_id = %s",
        (thread_id,),
    )
    return {r["interrupt_id"]: float(r["created_at"]) for r in rows}


def with_first_seen(pending: list[Pending], seen: dict[str, float]) -> list[Pending]:
    """`pending` with created_at replaced by the first time each was raised."""
    out = []
    for item in pending:
        at = seen.get(item.id)
        created = _iso(at) if at is not None else item.created_at
        out.append(Pending(item.id, item.kind, item.tool, item.args, item.question, created))
    return out


def expiry(item: Pending, timeout: float | None) -> float | None:
    """Epoch seconds when `item` is answered automatically, or None (no timeout)."""
    created = _epoch(item.created_at)
    if timeout is None or created is None:
        return None
    return created + timeout


def timeout_answers(
    pending: list[Pending], timeout: float | None, now: float | None = None
) -> dict[str, dict[str, Any]]:
    """Answers for the interrupts older than `timeout` seconds.

    Approvals and unknown outcomes are rejected; questions are answered with a rejection the model
    reads as "no answer" (ask_human tells it to decide itself).
    """
    now = time.time() if now is None else now
    out: dict[str, dict[str, Any]] = {}
    for item in pending:
        due = expiry(item, timeout)
        if due is not None and due <= now and item.kind != "unknown":
            reason = f"no answer within the approval timeout ({_span(timeout or 0)})"
            out[item.id] = {"decision": "reject", "reason": reason}
    return out


def _span(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()
