"""The outbox: SQL over enduro's facade, the same text on PostgreSQL and SQLite.

An event becomes a row, with its per-thread `seq` and one `pending` delivery per endpoint of
the thread, in one transaction, before anything tries to send it. Senders then walk each
(thread, endpoint) chain in `seq` order under a lease, so one event at a time per chain is
in flight, in whichever process holds the lease.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from enduro.storage import Database, Row, Transaction, fencing
from enduro.storage.leases import owner_alive
from enduro.webhooks.config import endpoint_id

Render = Callable[[int, str, float], str]
"""(seq, event_id, created_at) -> the event's JSON body."""


@dataclass(frozen=True)
class Endpoint:
    """One webhook URL of a thread, as `webhooks list` shows it.

    `state` is active or disabled (`disabled_reason` says why); `secret_fingerprint` names
    the secret its deliveries are signed with (None: unsigned).
    """

    thread_id: str
    endpoint_id: str
    url: str
    secret_fingerprint: str | None
    state: str
    disabled_reason: str | None


@dataclass(frozen=True)
class Head:
    """The lowest pending delivery of one (thread, endpoint) chain."""

    thread_id: str
    endpoint_id: str
    seq: int
    next_attempt_at: float
    secret_fingerprint: str | None

    @property
    def chain(self) -> tuple[str, str]:
        """The (thread_id, endpoint_id) chain this delivery belongs to."""
        return (self.thread_id, self.endpoint_id)


@dataclass(frozen=True)
class Delivery:
    """One pending delivery with its event: what a sender POSTs.

    `attempts` so far, `next_attempt_at` and `retry_from` (the time its retry schedule
    counts from) are epoch seconds.
    """

    thread_id: str
    endpoint_id: str
    seq: int
    event_id: str
    type: str
    body: str
    attempts: int
    next_attempt_at: float
    retry_from: float


class _Duplicate(Exception):
    pass


_ENDPOINT_COLUMNS = "thread_id, endpoint_id, url, secret_fingerprint, state, disabled_reason"


def _endpoint(row: Row) -> Endpoint:
    return Endpoint(**{k: row[k] for k in _ENDPOINT_COLUMNS.split(", ")})


async def subscribe(
    db: Database, thread_id: str, urls: Sequence[str], fingerprint: str | None
) -> None:
    """Add `urls` to the thread's endpoints.

    A URL already there keeps its state (a 410 stays disabled until `webhooks retry`) and takes the
    new secret fingerprint, but is never downgraded from signed to unsigned by a process that has no
    secret.
    """
    now = time.time()
    for url in urls:
        await db.execute(
            "INSERT INTO enduro_webhook_endpoints (thread_id, endpoint_id, url,"
            " secret_fingerprint, state, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, 'active', %s, %s)"
            " ON CONFLICT (thread_id, endpoint_id) DO UPDATE SET secret_fingerprint ="
            " COALESCE(excluded.secret_fingerprint, enduro_webhook_endpoints.secret_fingerprint),"
            " updated_at = excluded.updated_at",
            (thread_id, endpoint_id(url), url, fingerprint, now, now),
        )


async def endpoints(db: Database, thread_id: str | None = None) -> list[Endpoint]:
    """The endpoints of one thread, or of every thread, ordered by thread and endpoint id."""
    where, params = _filter(thread_id=thread_id)
    rows = await db.fetchall(
        f"SELECT {_ENDPOINT_COLUMNS} FROM enduro_webhook_endpoints {where}"
        " ORDER BY thread_id, endpoint_id",
        params,
    )
    return [_endpoint(r) for r in rows]


async def endpoint(db: Database, thread_id: str, endpoint_id: str) -> Endpoint | None:
    """One endpoint of a thread, or None if the thread has no such endpoint."""
    row = await db.fetchone(
        f"SELECT {_ENDPOINT_COLUMNS} FROM enduro_webhook_endpoints"
        " WHERE thread_id = %s AND endpoint_id = %s",
        (thread_id, endpoint_id),
    )
    return _endpoint(row) if row else None


async def append(
    db: Database, thread_id: str, kind: str, render: Render, dedupe_key: str | None = None
) -> tuple[int, str] | None:
    """Write one event and its deliveries; returns (seq, event_id).

    None when an event with the same `dedupe_key` exists for the thread (nothing is written, no seq
    is used up).
    """
    event_id = f"evt_{uuid.uuid4().hex}"
    now = time.time()

    async def write(tx: Transaction) -> int:
        # A process that lost the thread's lease emits nothing (storage.fencing).
        await fencing.check(tx, thread_id, db.dialect)
        # The upsert locks the thread's counter row until commit, so concurrent writers
        # (parallel tool tasks, a second process) queue here and get distinct numbers.
        row = await tx.fetchone(
            "INSERT INTO enduro_webhook_seq (thread_id, last_seq) VALUES (%s, 1)"
            " ON CONFLICT (thread_id) DO UPDATE"
            " SET last_seq = enduro_webhook_seq.last_seq + 1 RETURNING last_seq",
            (thread_id,),
        )
        assert row is not None
        seq = int(row["last_seq"])
        if dedupe_key is not None and await tx.fetchone(
            "SELECT seq FROM enduro_webhook_events WHERE thread_id = %s AND dedupe_key = %s",
            (thread_id, dedupe_key),
        ):
            raise _Duplicate  # rolls the counter back too: no gap in seq
        await tx.execute(
            "INSERT INTO enduro_webhook_events"
            " (thread_id, seq, event_id, type, dedupe_key, body, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (thread_id, seq, event_id, kind, dedupe_key, render(seq, event_id, now), now),
        )
        await tx.execute(
            "INSERT INTO enduro_webhook_deliveries (thread_id, endpoint_id, seq, state,"
            " attempts, next_attempt_at, retry_from, updated_at)"
            " SELECT thread_id, endpoint_id, %s, 'pending', 0, %s, %s, %s"
            " FROM enduro_webhook_endpoints WHERE thread_id = %s",
            (seq, now, now, now, thread_id),
        )
        return seq

    try:
        seq = await db.transact(write, "outbox append")
    except _Duplicate:
        return None
    except Exception as exc:
        # Two writers raced past the check with one dedupe key: the loser's insert hits the
        # unique index and rolls back, which is the same outcome as the check.
        if dedupe_key is not None and "unique" in str(exc).lower():
            return None
        raise
    return seq, event_id


async def heads(db: Database, thread_ids: Collection[str] | None = None) -> list[Head]:
    """The head of every chain with pending work whose endpoint is active."""
    where, params = _filter(thread_ids=thread_ids, alias="d")
    rows = await db.fetchall(
        "SELECT d.thread_id, d.endpoint_id, d.seq, d.next_attempt_at, e.secret_fingerprint"
        " FROM enduro_webhook_deliveries d JOIN enduro_webhook_endpoints e"
        " ON e.thread_id = d.thread_id AND e.endpoint_id = d.endpoint_id"
        f" {where} {'AND' if where else 'WHERE'} d.state = 'pending' AND e.state = 'active'"
        " AND d.seq = (SELECT MIN(d2.seq) FROM enduro_webhook_deliveries d2"
        " WHERE d2.thread_id = d.thread_id AND d2.endpoint_id = d.endpoint_id"
        " AND d2.state = 'pending')",
        params,
    )
    return [
        Head(
            r["thread_id"],
            r["endpoint_id"],
            int(r["seq"]),
            float(r["next_attempt_at"]),
            r["secret_fingerprint"],
        )
        for r in rows
    ]


async def head(db: Database, thread_id: str, endpoint_id: str) -> Delivery | None:
    """The lowest-seq pending delivery of a chain with its event, or None when it is empty."""
    row = await db.fetchone(
        "SELECT d.thread_id, d.endpoint_id, d.seq, v.event_id, v.type, v.body, d.attempts,"
        " d.next_attempt_at, d.retry_from FROM enduro_webhook_deliveries d"
        " JOIN enduro_webhook_events v ON v.thread_id = d.thread_id AND v.seq = d.seq"
        " WHERE d.thread_id = %s AND d.endpoint_id = %s AND d.state = 'pending'"
        " ORDER BY d.seq LIMIT 1",
        (thread_id, endpoint_id),
    )
    if row is None:
        return None
    return Delivery(
        thread_id=row["thread_id"],
        endpoint_id=row["endpoint_id"],
        seq=int(row["seq"]),
        event_id=row["event_id"],
        type=row["type"],
        body=row["body"],
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        retry_from=float(row["retry_from"]),
    )


async def mark_delivered(db: Database, d: Delivery, status: int) -> None:
    """Record that `d` was accepted with HTTP `status` (a 2xx); counts the attempt."""
    now = time.time()
    await db.execute(
        "UPDATE enduro_webhook_deliveries SET state = 'delivered', attempts = attempts + 1,"
        " last_status = %s, last_error = NULL, delivered_at = %s, updated_at = %s"
        " WHERE thread_id = %s AND endpoint_id = %s AND seq = %s AND state = 'pending'",
        (status, now, now, d.thread_id, d.endpoint_id, d.seq),
    )


async def mark_failed(
    db: Database,
    d: Delivery,
    *,
    attempts: int,
    next_attempt_at: float,
    status: int | None,
    error: str,
    dead: bool,
) -> None:
    """Record a failed attempt of `d`.

    It is pending again at `next_attempt_at` (epoch seconds), or dead when `dead`;
    `status` None means no HTTP answer came, `error` says why.
    """
    await db.execute(
        "UPDATE enduro_webhook_deliveries SET state = %s, attempts = %s, next_attempt_at = %s,"
        " last_status = %s, last_error = %s, updated_at = %s"
        " WHERE thread_id = %s AND endpoint_id = %s AND seq = %s AND state = 'pending'",
        (
            "dead" if dead else "pending",
            attempts,
            next_attempt_at,
            status,
            error[:500],
            time.time(),
            d.thread_id,
            d.endpoint_id,
            d.seq,
        ),
    )


async def disable(db: Database, thread_id: str, endpoint_id: str, reason: str) -> None:
    """Stop delivering to an endpoint (a 410 Gone) until `webhooks retry`; `reason` is shown."""
    await db.execute(
        "UPDATE enduro_webhook_endpoints SET state = 'disabled', disabled_reason = %s,"
        " updated_at = %s WHERE thread_id = %s AND endpoint_id = %s",
        (reason, time.time(), thread_id, endpoint_id),
    )


def _lease_holder_alive(owner: str) -> bool:
    host_pid = owner.split("/", 1)[0]
    return owner_alive(host_pid, time.time())


async def take_lease(
    db: Database, thread_id: str, endpoint_id: str, owner: str, seconds: float
) -> bool:
    """Become the one sender of this chain for `seconds` (renewed per attempt).

    A lease expires on its own; one held by a dead process on this machine is taken over at once.
    """
    now = time.time()
    changed = await db.execute(
        "UPDATE enduro_webhook_endpoints SET lease_owner = %s, lease_until = %s"
        " WHERE thread_id = %s AND endpoint_id = %s"
        " AND (lease_owner IS NULL OR lease_owner = %s OR lease_until < %s)",
        (owner, now + seconds, thread_id, endpoint_id, owner, now),
    )
    if changed == 1:
        return True
    row = await db.fetchone(
        "SELECT lease_owner FROM enduro_webhook_endpoints"
        " WHERE thread_id = %s AND endpoint_id = %s",
        (thread_id, endpoint_id),
    )
    holder = row["lease_owner"] if row else None
    if not holder or _lease_holder_alive(holder):
        return False
    changed = await db.execute(
        "UPDATE enduro_webhook_endpoints SET lease_owner = %s, lease_until = %s"
        " WHERE thread_id = %s AND endpoint_id = %s AND lease_owner = %s",
        (owner, now + seconds, thread_id, endpoint_id, holder),
    )
    return changed == 1


async def release_lease(db: Database, thread_id: str, endpoint_id: str, owner: str) -> None:
    """Give up `owner`'s lease on a chain (no-op if another process holds it now)."""
    await db.execute(
        "UPDATE enduro_webhook_endpoints SET lease_owner = NULL, lease_until = NULL"
        " WHERE thread_id = %s AND endpoint_id = %s AND lease_owner = %s",
        (thread_id, endpoint_id, owner),
    )


async def deliveries(
    db: Database,
    *,
    thread_id: str | None = None,
    states: Sequence[str] = ("pending", "dead"),
    limit: int = 500,
) -> list[Row]:
    """Delivery rows with their event and endpoint, oldest first, for `webhooks list`."""
    where, params = _filter(thread_id=thread_id, alias="d")
    marks = ", ".join(["%s"] * len(states))
    rows = await db.fetchall(
        "SELECT d.thread_id, d.endpoint_id, e.url, e.state AS endpoint_state,"
        " e.disabled_reason, d.seq, v.type, v.event_id, d.state, d.attempts,"
        " d.next_attempt_at, d.last_status, d.last_error, v.created_at, d.delivered_at"
        " FROM enduro_webhook_deliveries d"
        " JOIN enduro_webhook_events v ON v.thread_id = d.thread_id AND v.seq = d.seq"
        " JOIN enduro_webhook_endpoints e"
        " ON e.thread_id = d.thread_id AND e.endpoint_id = d.endpoint_id"
        f" {where} {'AND' if where else 'WHERE'} d.state IN ({marks})"
        " ORDER BY d.thread_id, d.endpoint_id, d.seq LIMIT %s",
        (*params, *states, limit),
    )
    return rows


async def revive(
    db: Database,
    *,
    thread_id: str | None = None,
    endpoint_id: str | None = None,
    seq: int | None = None,
) -> tuple[int, int]:
    """`webhooks retry`: revive dead deliveries and disabled endpoints.

    Dead deliveries go back to pending with a fresh schedule, pending ones become due now, and
    disabled endpoints active again. Returns (revived, re-enabled).
    """
    now = time.time()
    where, params = _filter(thread_id=thread_id, endpoint_id=endpoint_id, seq=seq)
    glue = "AND" if where else "WHERE"
    revived = await db.execute(
        "UPDATE enduro_webhook_deliveries SET state = 'pending', attempts = 0,"
        f" next_attempt_at = %s, retry_from = %s, updated_at = %s {where} {glue} state = 'dead'",
        (now, now, now, *params),
    )
    await db.execute(
        f"UPDATE enduro_webhook_deliveries SET next_attempt_at = %s {where} {glue}"
        " state = 'pending'",
        (now, *params),
    )
    where, params = _filter(thread_id=thread_id, endpoint_id=endpoint_id)
    glue = "AND" if where else "WHERE"
    enabled = await db.execute(
        "UPDATE enduro_webhook_endpoints SET state = 'active', disabled_reason = NULL,"
        f" updated_at = %s {where} {glue} state = 'disabled'",
        (now, *params),
    )
    return revived, enabled


def _filter(
    *,
    thread_id: str | None = None,
    thread_ids: Collection[str] | None = None,
    endpoint_id: str | None = None,
    seq: int | None = None,
    alias: str = "",
) -> tuple[str, tuple[Any, ...]]:
    prefix = f"{alias}." if alias else ""
    clauses: list[str] = []
    params: list[Any] = []
    if thread_id is not None:
        clauses.append(f"{prefix}thread_id = %s")
        params.append(thread_id)
    if thread_ids is not None:
        ids = list(thread_ids) or [""]
        clauses.append(f"{prefix}thread_id IN ({', '.join(['%s'] * len(ids))})")
        params.extend(ids)
    if endpoint_id is not None:
        clauses.append(f"{prefix}endpoint_id = %s")
        params.append(endpoint_id)
    if seq is not None:
        clauses.append(f"{prefix}seq = %s")
        params.append(seq)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)
