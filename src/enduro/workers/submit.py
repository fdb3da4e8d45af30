"""Handing threads to the workers: the Python side of `run --detach` / `resume --detach`.

A submitted thread is `queued` (status JSON) with one procrastinate job; `run.queued` is
its event. Any process with the database URL can submit; nothing runs here.
"""

from __future__ import annotations

from enduro import threads
from enduro._redact import redact
from enduro.budgets.config import check_budget_config
from enduro.context import ContextOverrides, EnduroContext
from enduro.errors import ConfigError, ThreadBusy, UnknownThread
from enduro.runner import create_run
from enduro.storage.backend import Backend, is_postgres
from enduro.webhooks.config import WebhookConfig
from enduro.webhooks.session import thread_event
from enduro.workers import queue


def require_postgres(url: str, what: str) -> None:
    """Raise ConfigError (exit 2) naming `what` unless `url` is PostgreSQL."""
    if not is_postgres(url):
        raise ConfigError(
            f"{what} needs PostgreSQL, and the database is {redact(url)!r} (SQLite): set "
            "ENDURO_DATABASE_URL or --db to postgresql://…; runs in the foreground (without "
            "--detach) work on SQLite"
        )


async def submit_new(
    backend: Backend,
    goal: str,
    context: EnduroContext,
    *,
    thread_id: str | None = None,
    name: str | None = None,
    hooks: WebhookConfig | None = None,
) -> str:
    """Create a thread for `goal` and queue it; returns its id.

    Args:
        backend: the open database (PostgreSQL).
        goal: the user's goal.
        context: the run's knobs and limits.
        thread_id: the id (None: a new UUID).
        name: the name the id maps from (`enduro.names`), if any.
        hooks: webhook URLs to subscribe the thread to (and sign with); None: none.

    Raises:
        ConfigError: not PostgreSQL, or the thread (id or name) exists already.
    """
    require_postgres(backend.url, "--detach")
    thread_id = await create_run(backend, goal, context, thread_id, name=name)
    await _enqueue(backend, thread_id, None, hooks)
    return thread_id


async def submit_existing(
    backend: Backend,
    thread_id: str,
    overrides: ContextOverrides | None = None,
    *,
    hooks: WebhookConfig | None = None,
) -> None:
    """Queue an existing thread (a resume); `overrides` replace its stored knobs.

    Args:
        backend: the open database (PostgreSQL).
        thread_id: the thread's id.
        overrides: knobs replacing the stored ones (None: keep them).
        hooks: webhook URLs to subscribe the thread to; None: none.

    Raises:
        UnknownThread: no such thread. ThreadBusy: a live process runs it now.
        ConfigError: not PostgreSQL, or limits that cannot be enforced.
    """
    require_postgres(backend.url, "--detach")
    row = await threads.load_thread(backend, thread_id)
    if row is None:
        raise UnknownThread(
            f"unknown thread {thread_id!r}: `enduro list` shows the threads in "
            f"{redact(backend.url)}"
        )
    context = row.context.with_overrides(overrides or ContextOverrides())
    check_budget_config(context)
    await _enqueue(backend, thread_id, context, hooks)


async def _enqueue(
    backend: Backend,
    thread_id: str,
    context: EnduroContext | None,
    hooks: WebhookConfig | None,
) -> None:
    if not await threads.mark_queued(backend.db, thread_id, context):
        raise ThreadBusy(
            f"thread {thread_id!r} is being run right now; `enduro watch {thread_id}` follows it"
        )
    config = hooks or WebhookConfig()
    await thread_event(backend, thread_id, config, "run.queued", ("queued", None), flush=False)
    app = queue.new_app(backend.url, max_size=1)
    async with app.open_async():
        await queue.defer(app, thread_id)


async def cancel_queued(backend: Backend, thread_id: str) -> bool:
    """The queue side of `enduro cancel`: cancel the thread's queued job and ask the worker
    running it to abort (the durable cancel flag makes that graceful). True when the thread
    had a job; False on SQLite (no queue)."""
    if backend.db.dialect != "postgres":
        return False
    app = queue.new_app(backend.url, max_size=1)
    async with app.open_async():
        cancelled, aborted = await queue.cancel_jobs(app, backend.db, thread_id)
    return bool(cancelled or aborted)
