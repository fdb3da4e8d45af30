"""Everything the dashboard reads from and does to the database, in one small module.

The dashboard never builds a status by itself: it calls the same function as
`enduro.Client.status` and `enduro status` (`build_status` over the thread row, the latest
checkpoint and the ledger), so the page, the API and the CLI cannot disagree; it keeps the
checkpoint's values at hand for what the contract leaves out (step summaries). Actions go
through `enduro.Client` (cancel) or `enduro resume` (see `actions`). Nothing else in the
package touches storage.

Invariants:
- lists are keyset-paginated on `(created_at, thread_id)`, newest first: a page costs the
  same with 10 threads or 10,000 (index `enduro_threads_created`), and rows that change
  while someone pages cannot appear twice or be skipped;
- nothing secret is returned: the thread's context holds no key (see `EnduroContext`), and
  the lease holder is `host:pid`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from typing import Any

from enduro import threads
from enduro.budgets.report import load_spend
from enduro.client import Client
from enduro.errors import UnknownThread
from enduro.hitl.waiting import thread_interrupts
from enduro.status import build_status, checkpoint_values
from enduro.storage import Backend
from enduro.threads import ThreadRow

# Stored statuses a filter on the shown (effective) status must look at: a `running` row
# whose holder died shows as `paused` (crashed).
_STORED_FOR = {"paused": ("paused", "running")}
_COLUMNS = (
    "thread_id, goal, status, stop_reason, context, created_at, updated_at, owner, "
    "heartbeat_at, cancel_requested, segments, name"
)


class NotFound(Exception):
    """No thread with that id."""


class Conflict(Exception):
    """The action does not apply to the thread in its current status."""


def encode_cursor(row: ThreadRow) -> str:
    """The cursor of the page that follows `row`."""
    return encode_cursor_values(row.created_at, row.thread_id)


def encode_cursor_values(created_at: float, thread_id: str) -> str:
    """The opaque list cursor after the row (`created_at`, `thread_id`): URL-safe base64 JSON."""
    raw = json.dumps([created_at, thread_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Raises ValueError on a cursor this module did not write."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, thread_id = json.loads(raw)
        return float(created_at), str(thread_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise ValueError(f"bad cursor {cursor[:40]!r}: pass the next_cursor of a page") from exc


def lease(row: ThreadRow, now: float | None = None) -> dict[str, Any]:
    """Last sign of life: who holds the thread and how long ago it said so."""
    now = time.time() if now is None else now
    beat = row.heartbeat_at
    return {
        "owner": row.owner,
        "heartbeat_at": beat,
        "heartbeat_age_seconds": None if beat is None else round(max(0.0, now - beat), 1),
    }


async def status_of(backend: Backend, row: ThreadRow) -> dict[str, Any]:
    """The status contract (with `forecast`) plus `lease` and `plan_detail` (summaries)."""
    values, checkpoint_id = await checkpoint_values(backend, row.thread_id)
    spend = await load_spend(backend.db, row.thread_id)
    pending = await thread_interrupts(backend, row.thread_id)
    status = build_status(row, values, checkpoint_id, spend, pending)
    status["lease"] = lease(row)
    status["plan_detail"] = [
        {
            "id": s["id"],
            "title": s["title"],
            "status": s["status"],
            "summary": s.get("summary"),
            "attempts": s.get("attempts", 0),
        }
        for s in values.get("plan") or []
    ]
    return status


async def thread(backend: Backend, thread_id: str) -> dict[str, Any]:
    """The thread's status contract with the dashboard's additions (forecast, lease, detail).

    Raises:
        NotFound: no thread has this id.
    """
    row = await threads.load_thread(backend, thread_id)
    if row is None:
        raise NotFound(thread_id)
    return await status_of(backend, row)


async def page(
    backend: Backend, *, status: str | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of threads, newest first, and the cursor of the next page (None on the last).

    Items are the status contract without `plan`, `plan_detail` and `report`.
    """
    where: list[str] = []
    params: list[Any] = []
    if status:
        stored = _STORED_FOR.get(status, (status,))
        where.append(f"status IN ({', '.join(['%s'] * len(stored))})")
        params.extend(stored)
    if cursor:
        created_at, thread_id = decode_cursor(cursor)
        # A row-value comparison: both engines seek the index to the cursor.
        where.append("(created_at, thread_id) < (%s, %s)")
        params.extend([created_at, thread_id])
    sql = (
        f"SELECT {_COLUMNS} FROM enduro_threads"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY created_at DESC, thread_id DESC LIMIT %s"
    )
    rows = [ThreadRow.from_row(r) for r in await backend.db.fetchall(sql, [*params, limit + 1])]
    more = len(rows) > limit
    rows = rows[:limit]
    shown = [r for r in rows if not status or r.effective_status()[0] == status]
    # Concurrently: on PostgreSQL each status is a few round trips on a pooled connection.
    items = await asyncio.gather(*(status_of(backend, row) for row in shown))
    for item in items:
        for heavy in ("plan", "plan_detail", "report"):
            item.pop(heavy)
    return list(items), encode_cursor(rows[-1]) if more and rows else None


async def events(
    backend: Backend, thread_id: str, *, since: int = 0, limit: int = 500
) -> list[dict[str, Any]]:
    """The thread's events after seq `since`, in order, read from the outbox.

    Each is `{"seq", "type", "timestamp", "data"}`, exactly what its webhooks carry.
    """
    rows = await backend.db.fetchall(
        "SELECT seq, body FROM enduro_webhook_events WHERE thread_id = %s AND seq > %s"
        " ORDER BY seq LIMIT %s",
        (thread_id, since, limit),
    )
    out = []
    for r in rows:
        body = json.loads(r["body"])
        out.append({"seq": int(r["seq"]), **body})
    return out


async def spend(backend: Backend, thread_id: str) -> dict[str, Any]:
    """The ledger as series.

    Every call (`at`, `node`, `model`, `usd`, …) and the running total by model and by node, as
    `[[at, cumulative_usd], …]` per key.
    """
    row = await threads.get_thread(backend.db, thread_id)
    if row is None:
        raise NotFound(thread_id)
    view = await load_spend(backend.db, thread_id)
    return {
        "thread_id": thread_id,
        "usd": view.usage()["usd"],
        "max_usd": row.context.max_usd,
        "calls": view.calls,
        "by_model": cumulative(view.calls, "model"),
        "by_node": cumulative(view.calls, "node"),
    }


def cumulative(calls: list[dict[str, Any]], key: str) -> dict[str, list[list[float]]]:
    """Running totals per value of `key`, one point per call."""
    totals: dict[str, float] = {}
    out: dict[str, list[list[float]]] = {}
    for call in calls:
        name = str(call[key])
        totals[name] = totals.get(name, 0.0) + float(call["usd"])
        out.setdefault(name, []).append([call["at"], round(totals[name], 9)])
    return out


async def cancel(client: Client, thread_id: str) -> str:
    """Cancel a thread as `enduro.Client.cancel` does; `Conflict` when it is over.

    A running thread finishes at its next step (`requested`); one no process runs is marked
    cancelled at once (`cancelled`).
    """
    try:
        result = await client.cancel(thread_id)
    except UnknownThread as exc:
        raise NotFound(thread_id) from exc
    if result.action == "already_finished":
        raise Conflict(f"thread {thread_id} is already {result.status.status}")
    return result.action
