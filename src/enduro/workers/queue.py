"""The job queue: procrastinate on enduro's PostgreSQL, one job per thread to advance.

Invariants and why:
- A job is `advance(thread_id)`. Its `lock` is the thread id, so at most one job of a
  thread is `doing` at a time (procrastinate's fetch skips a job whose lock a `doing` job
  holds); enduro's lease (`enduro_threads.lease_epoch`) is the second, fencing line.
- Its `queueing_lock` is the thread id too, so a thread is queued at most once: a second
  `run --detach` / `resume --detach`, or a slice's re-queue while a `todo` job exists,
  finds it queued already (`AlreadyEnqueued`, taken as success).
- No job is ever scheduled for later and the task has no procrastinate retry: a job in the
  future holding a lock blocks ready jobs of that lock (procrastinate #1599), and a retry
  of a job whose queueing lock another `todo` job took fails with a unique violation and
  leaves it `doing` forever (#1446, #1543). Waits (a held lease, a 429) happen inside the
  job; a stalled job is handled by `recover_stalled` below.
- procrastinate's tables live in the same database and are created by `enduro db migrate`
  (and by any command that migrates) when missing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate import exceptions as pq_errors
from procrastinate import jobs as pq_jobs
from procrastinate.schema import SchemaManager

from enduro.storage import Database

log = logging.getLogger(__name__)

TASK_NAME = "enduro.advance"
QUEUE = "enduro"
_SCHEMA_LOCK = 870413


def new_app(url: str, *, max_size: int = 4) -> App:
    """A procrastinate App on `url` (psycopg 3 connector with its own small pool: its
    LISTEN connection is opened with `autocommit=True` next to the pool's kwargs, which
    clashes with the checkpoint pool's). Open it with `async with app.open_async()`."""
    return App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=max_size))


async def ensure_queue_schema(url: str) -> bool:
    """Create procrastinate's tables, types and functions when missing; True if it did.
    Serialised by an advisory lock so that concurrent migrations create them once. Its own
    connection: the schema is many statements in one text, which the checkpoint pool's
    connections (every statement prepared, for PgBouncer) cannot send."""
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        await conn.execute(f"SELECT pg_advisory_xact_lock({_SCHEMA_LOCK})")
        cur = await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
        row = await cur.fetchone()
        if row and row[0]:
            return False
        await conn.execute(SchemaManager.get_schema())
    return True


async def defer(app: App, thread_id: str) -> int | None:
    """Queue `thread_id`; the job id, or None when the thread is queued already."""
    deferrer = app.configure_task(TASK_NAME, queue=QUEUE, lock=thread_id, queueing_lock=thread_id)
    try:
        return await deferrer.defer_async(thread_id=thread_id)
    except pq_errors.AlreadyEnqueued:
        return None


async def pending_jobs(db: Database, thread_id: str) -> list[dict[str, Any]]:
    """The thread's jobs that are `todo` or `doing` (normally at most one of each)."""
    return await db.fetchall(
        "SELECT id, status::text AS status, worker_id FROM procrastinate_jobs"
        " WHERE lock = %s AND task_name = %s AND status IN ('todo', 'doing') ORDER BY id",
        (thread_id, TASK_NAME),
    )


async def cancel_jobs(app: App, db: Database, thread_id: str) -> tuple[int, int]:
    """Cancel the thread's `todo` jobs and ask workers to abort its `doing` one:
    (cancelled, abort requested)."""
    cancelled = aborted = 0
    for job in await pending_jobs(db, thread_id):
        if job["status"] == "todo" and await app.job_manager.cancel_job_by_id_async(job["id"]):
            cancelled += 1
        elif await app.job_manager.cancel_job_by_id_async(job["id"], abort=True):
            aborted += 1
    return cancelled, aborted


async def recover_stalled(app: App, stalled_seconds: float) -> int:
    """Put the jobs of workers silent for `stalled_seconds` back in the queue.

    Runs in every worker process, not as a procrastinate job: a periodic job carrying a
    lock can stall with the worker that ran it and then nothing retries it (#1408). A
    stalled job whose queueing lock is taken by a newer `todo` job of the same thread
    (#1446, #1543) is finished as failed instead: that newer job advances the thread."""
    manager = app.job_manager
    await manager.prune_stalled_workers(stalled_seconds)
    moved = 0
    for job in await manager.get_stalled_jobs(
        task_name=TASK_NAME, seconds_since_heartbeat=stalled_seconds
    ):
        assert job.id is not None
        try:
            await manager.retry_job(job)
            moved += 1
            log.warning("job %s of thread %s was stalled; queued again", job.id, job.lock)
        except pq_errors.UniqueViolation:
            await manager.finish_job(job, pq_jobs.Status.FAILED, delete_job=False)
            log.warning("job %s stalled; thread %s is queued already", job.id, job.lock)
        except pq_errors.ConnectorException as exc:
            # Another worker recovered it first: it is no longer `doing`.
            log.debug("stalled job %s not retried: %s", job.id, exc)
    return moved


@dataclass(frozen=True)
class WorkerInfo:
    worker_id: int
    host: str
    pid: int
    concurrency: int
    started_at: float
    last_heartbeat: float
    threads: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "concurrency": self.concurrency,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat,
            "threads": self.threads,
        }


async def register(db: Database, worker_id: int, concurrency: int) -> None:
    """Host and pid next to procrastinate's worker row, for `enduro workers`."""
    await db.execute(
        "INSERT INTO enduro_workers (worker_id, host, pid, concurrency, started_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (worker_id) DO NOTHING",
        (worker_id, socket.gethostname(), os.getpid(), concurrency, time.time()),
    )
    # Rows of workers procrastinate no longer knows (pruned or unregistered).
    await db.execute(
        "DELETE FROM enduro_workers WHERE worker_id NOT IN (SELECT id FROM procrastinate_workers)"
    )


async def unregister(db: Database, worker_id: int) -> None:
    await db.execute("DELETE FROM enduro_workers WHERE worker_id = %s", (worker_id,))


async def still_registered(db: Database, worker_id: int) -> bool:
    """False once other workers pruned this one as dead (its jobs went back to the queue)."""
    row = await db.fetchone("SELECT 1 AS ok FROM procrastinate_workers WHERE id = %s", (worker_id,))
    return row is not None


async def live_workers(db: Database, stalled_seconds: float) -> list[WorkerInfo]:
    """Workers whose heartbeat is younger than `stalled_seconds`, with the threads each
    is advancing now (its `doing` jobs)."""
    rows = await db.fetchall(
        "SELECT w.id AS worker_id, e.host, e.pid, e.concurrency, e.started_at,"
        " EXTRACT(EPOCH FROM w.last_heartbeat)::float8 AS last_heartbeat,"
        " COALESCE(array_agg(j.lock ORDER BY j.lock) FILTER (WHERE j.id IS NOT NULL),"
        " '{}') AS threads"
        " FROM procrastinate_workers w"
        " LEFT JOIN enduro_workers e ON e.worker_id = w.id"
        " LEFT JOIN procrastinate_jobs j ON j.worker_id = w.id AND j.status = 'doing'"
        " WHERE w.last_heartbeat > NOW() - make_interval(secs => %s)"
        " GROUP BY w.id, e.host, e.pid, e.concurrency, e.started_at ORDER BY w.id",
        (stalled_seconds,),
    )
    return [
        WorkerInfo(
            worker_id=int(r["worker_id"]),
            host=r["host"] or "?",
            pid=int(r["pid"] or 0),
            concurrency=int(r["concurrency"] or 0),
            started_at=float(r["started_at"] or 0),
            last_heartbeat=float(r["last_heartbeat"]),
            threads=list(r["threads"]),
        )
        for r in rows
    ]
