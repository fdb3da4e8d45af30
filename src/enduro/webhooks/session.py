"""Wiring: a process's webhook session, the runner's events, the `langgraph dev` handler.

The handler of the module-level graph (`langgraph dev`) is configured from the env.

Every event is written by `WebhookSession.emit`: the sayer's picture of the thread with
the ledger's figures and the latest checkpoint id (`events.snapshot`), plus the event's own
fields with free text redacted. A thread without an endpoint costs one query per segment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
from contextlib import AsyncExitStack
from typing import Any, cast

from langchain_core.callbacks import BaseCallbackHandler

from enduro import threads
from enduro._redact import redact
from enduro.budgets.report import SpendView, load_spend
from enduro.context import EnduroContext
from enduro.errors import ConfigError
from enduro.events import Fields, InterruptBrief, ThreadSnapshot, event, thread_snapshot
from enduro.settings import Settings
from enduro.status import checkpoint_values
from enduro.storage import Backend, Database, open_backend
from enduro.storage.outage import DatabaseUnreachable
from enduro.threads import ThreadRow
from enduro.webhooks import outbox
from enduro.webhooks.config import WebhookConfig
from enduro.webhooks.events import MAX_ERROR_CHARS, render_body, snapshot
from enduro.webhooks.handler import WebhookHandler
from enduro.webhooks.sender import Sender

log = logging.getLogger(__name__)

_LATEST_CHECKPOINT = (
    "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
    " ORDER BY checkpoint_id DESC LIMIT 1"
)


class WebhookSession:
    """Webhooks for the threads one process runs.

    Subscribes them to the configured endpoints, writes their events to the outbox and
    delivers them in the background.

    A thread with no endpoint (none configured now, none recorded before) costs one query
    per segment and writes nothing.
    """

    def __init__(self, db: Database, config: WebhookConfig, *, every_thread: bool = False) -> None:
        """A session on `db` (outbox, endpoints) with `config` (URLs, secret, timings).

        `every_thread`: deliver the pending events of every thread in the database (a
        worker), not only of the threads this session attached.
        """
        self.db = db
        self.config = config
        self.sender = Sender(db, config, thread_ids=None if every_thread else ())
        self.handler = WebhookHandler(self)
        self._enabled: dict[str, bool] = {}
        self._checkpoints_readable = True

    @property
    def heartbeat_seconds(self) -> float:
        """Seconds without an event, while a node runs, before a run.heartbeat."""
        return self.config.heartbeat_seconds

    async def attach(self, thread_id: str) -> bool:
        """Subscribe the thread to this process's endpoints; True if it has any.

        Endpoints recorded by an earlier segment count too; the thread's pending events
        are then delivered.
        """
        if self.config.urls:
            await outbox.subscribe(self.db, thread_id, self.config.urls, self.config.fingerprint)
        enabled = bool(await outbox.endpoints(self.db, thread_id))
        self._enabled[thread_id] = enabled
        if enabled:
            self.sender.watch(thread_id)
            self.sender.start()
        return enabled

    async def enabled(self, thread_id: str) -> bool:
        """Whether the thread has an endpoint (attached on first use, then cached)."""
        if thread_id not in self._enabled:
            await self.attach(thread_id)
        return self._enabled[thread_id]

    async def emit(
        self,
        thread_id: str,
        kind: str,
        thread: ThreadSnapshot,
        fields: Fields,
        dedupe: str | None,
    ) -> int | None:
        """Write one event to the outbox and wake the sender.

        Returns:
            The event's seq; None when the thread has no endpoint or an event with the
            same `dedupe` key exists.
        """
        if not await self.enabled(thread_id):
            return None
        # Independent reads: on PostgreSQL they run on two pooled connections at once.
        checkpoint_id, spend = await asyncio.gather(
            self._checkpoint_id(thread_id), self._spend(thread_id)
        )
        base = snapshot(thread_id, thread, checkpoint_id, spend)
        extra = _redacted(fields)
        written = await outbox.append(
            self.db,
            thread_id,
            kind,
            lambda seq, event_id, at: render_body(
                kind, event_id=event_id, seq=seq, created_at=at, base=base, extra=extra
            ),
            dedupe,
        )
        if written is None:
            return None
        self.sender.wake()
        return written[0]

    async def _spend(self, thread_id: str) -> SpendView | None:
        """Dollars, calls and tokens from the ledger, as `enduro status` shows them."""
        try:
            return await load_spend(self.db, thread_id)
        except Exception as exc:
            log.debug("no ledger figures for the event: %s", exc)
            return None

    async def _checkpoint_id(self, thread_id: str) -> str | None:
        if not self._checkpoints_readable:
            return None
        try:
            row = await self.db.fetchone(_LATEST_CHECKPOINT, (thread_id,))
        except Exception:
            # The graph may run on a saver of its own (library use): no id to give.
            self._checkpoints_readable = False
            return None
        return str(row["checkpoint_id"]) if row else None

    async def close(self, *, flush: bool | None = None) -> None:
        """Give pending deliveries up to `flush_seconds`, then stop.

        No waiting when the task is being cancelled (a second Ctrl-C): what is pending
        stays in the outbox for the next `enduro resume` or `enduro webhooks deliver`.
        """
        if flush is None:
            task = asyncio.current_task()
            flush = not (task is not None and task.cancelling())
        try:
            wait = self.config.flush_seconds
            if flush and self.sender.running and wait > 0 and not await self.sender.flush(wait):
                log.warning(
                    "webhook events still pending after %g s; they stay in the outbox: "
                    "`enduro webhooks list` shows them, `enduro webhooks deliver` sends them",
                    wait,
                )
        except DatabaseUnreachable as exc:
            log.warning("webhook events not flushed, the database is unreachable: %s", exc.detail)
        finally:
            await self.sender.stop()

    async def __aenter__(self) -> WebhookSession:
        """The session itself."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close; flush only when the block ended without an exception."""
        await self.close(flush=None if exc[0] is None else False)


class SegmentEvents:
    """The runner's side of a segment's events.

    It says run.started / run.resumed when a segment starts and run.paused / run.failed
    when it ends without reaching finish (finish says its own event), and ends a session
    the runner opened itself.
    """

    def __init__(self, session: WebhookSession, owned: bool, thread_id: str, enabled: bool):
        """Events of `thread_id` through `session` (closed at the end when `owned`)."""
        self.session = session
        self.owned = owned
        self.thread_id = thread_id
        self.enabled = enabled
        self.segment: int | None = None

    @property
    def handler(self) -> BaseCallbackHandler | None:
        """The handler to bind to the graph; None when the thread has no endpoint."""
        return self.session.handler if self.enabled else None

    async def started(
        self,
        row: ThreadRow,
        values: dict[str, Any],
        context: EnduroContext,
        segment: int,
        answered: list[dict[str, Any]] | None = None,
    ) -> None:
        """Say the segment started: run.started for the first, run.resumed after.

        `answered` lists the interrupts answered to resume it (id, kind, tool), if any.
        """
        if not self.enabled:
            return
        self.segment = segment
        thread = thread_snapshot(values, context, segment, {"status": "running"})
        thread["stop_reason"] = None
        if row.segments == 0:
            said = event("run.started", self.thread_id, thread, dedupe="run.started")
        else:
            status, reason = row.effective_status()
            fields: Fields = {"resumed_from": {"status": status, "stop_reason": reason}}
            if answered:
                fields["interrupts"] = cast(list[InterruptBrief], answered)
            said = event("run.resumed", self.thread_id, thread, fields, f"run.resumed:{segment}")
        await self.session.handler.said(said)

    async def waiting(self, interrupts: list[dict[str, Any]]) -> None:
        """Say run.waiting: the segment stopped for a person.

        `interrupts` carry id, kind and tool name only; a tool's arguments never leave the
        process in an event.
        """
        if not self.enabled:
            return
        await asyncio.shield(
            self.session.handler.waiting(
                self.thread_id, cast(list[InterruptBrief], interrupts), self.segment
            )
        )

    async def ended(self, status: str, stop_reason: str | None) -> None:
        """Say run.paused / run.failed for a segment that stopped outside finish."""
        if not self.enabled:
            return
        await asyncio.shield(
            self.session.handler.stopped(self.thread_id, status, stop_reason, self.segment)
        )

    async def close(self) -> None:
        """Forget the thread; flush and stop a session opened for this segment alone.

        No waiting when a second signal is cancelling the run.
        """
        task = asyncio.current_task()
        flush = not (task is not None and task.cancelling())
        await asyncio.shield(self._close(flush))

    async def _close(self, flush: bool) -> None:
        with contextlib.suppress(Exception):
            await self.session.handler.forget(self.thread_id)
        if self.owned:
            await self.session.close(flush=flush)


async def open_segment(
    db: Database, thread_id: str, session: WebhookSession | None
) -> SegmentEvents:
    """The events of one segment run by `advance_with_backend`.

    Through the caller's session, or one configured from the environment: any worker
    advancing a thread delivers to the thread's recorded endpoints, signing with
    ENDURO_WEBHOOK_SECRET.
    """
    owned = session is None
    if session is None:
        session = WebhookSession(db, WebhookConfig.from_env())
    try:
        enabled = await session.attach(thread_id)
    except BaseException:
        if owned:
            await session.close(flush=False)
        raise
    return SegmentEvents(session, owned, thread_id, enabled)


class EnvWebhooks:
    """The emitter behind the module-level `graph` (what `langgraph dev` serves).

    Configured from ENDURO_WEBHOOK_URL / ENDURO_WEBHOOK_SECRET / ENDURO_DATABASE_URL when
    the first run starts, on the server's own event loop. Inactive (no database opened)
    unless ENDURO_WEBHOOK_URL is set.
    """

    def __init__(self) -> None:
        """Nothing is opened until the first run."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: WebhookSession | None = None
        self._stack: AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self._broken: str | None = None

    @property
    def heartbeat_seconds(self) -> float:
        """The configured heartbeat interval (30 s before the first run)."""
        return self._session.config.heartbeat_seconds if self._session else 30.0

    async def _get(self) -> WebhookSession | None:
        if not os.environ.get("ENDURO_WEBHOOK_URL", "").strip() or self._broken:
            return None
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (tests run several): connections of the old one are unusable.
            self._loop, self._session, self._stack = loop, None, None
            self._lock = asyncio.Lock()
        if self._session is not None:
            return self._session
        assert self._lock is not None
        async with self._lock:
            if self._session is None:
                try:
                    config = WebhookConfig.from_env()
                except ConfigError as exc:
                    self._broken = str(exc)
                    log.error("webhooks are off for this server: %s", exc)
                    return None
                stack = AsyncExitStack()
                backend = await stack.enter_async_context(
                    open_backend(Settings.from_env().database_url)
                )
                self._stack, self._session = stack, WebhookSession(backend.db, config)
        return self._session

    async def enabled(self, thread_id: str) -> bool:
        """Whether webhooks are on and the thread has an endpoint."""
        session = await self._get()
        return session is not None and await session.enabled(thread_id)

    async def aclose(self) -> None:
        """Deliver what is pending (bounded) and close the database.

        A server never needs this (it stops with its loop); tests and embedding
        applications do.
        """
        session, stack = self._session, self._stack
        self._session, self._stack, self._loop = None, None, None
        if session is not None:
            await session.close()
        if stack is not None:
            await stack.aclose()

    async def emit(
        self,
        thread_id: str,
        kind: str,
        thread: ThreadSnapshot,
        fields: Fields,
        dedupe: str | None,
    ) -> int | None:
        """`WebhookSession.emit` on the env-configured session; None when webhooks are off."""
        session = await self._get()
        if session is None:
            return None
        return await session.emit(thread_id, kind, thread, fields, dedupe)


def _redacted(fields: Fields) -> dict[str, Any]:
    """The event's own fields with free text (error messages, stop reasons) redacted."""
    out: dict[str, Any] = dict(fields)
    if fields.get("error") is not None:
        error = fields["error"]
        out["error"] = {"type": error["type"], "message": redact(error["message"], MAX_ERROR_CHARS)}
    resumed = fields.get("resumed_from")
    if resumed is not None:
        out["resumed_from"] = {
            **resumed,
            "stop_reason": redact(resumed["stop_reason"], MAX_ERROR_CHARS),
        }
    return out


def env_handler() -> WebhookHandler:
    """The handler bound to the module-level graph for `langgraph dev`."""
    return WebhookHandler(EnvWebhooks())


async def thread_cancelled(backend: Backend, thread_id: str) -> None:
    """Emit run.cancelled for `enduro cancel` of a thread no process is running.

    A running thread's run.cancelled comes from its own finish node instead.
    """
    try:
        config = dataclasses.replace(WebhookConfig.from_env(), urls=())
    except ConfigError as exc:
        print(f"enduro: webhooks: {exc}", file=sys.stderr)
        config = WebhookConfig()
    await thread_event(backend, thread_id, config, "run.cancelled", ("cancelled", "cancel"))


async def thread_event(
    backend: Backend,
    thread_id: str,
    config: WebhookConfig,
    kind: str,
    status: tuple[str, str | None],
    *,
    flush: bool = True,
) -> None:
    """Write one event for a thread no process is running (`cancel`, `run --detach`).

    `config`'s URLs are subscribed first; `status` is the (status, stop_reason) the event
    reports.
    """
    row = await threads.get_thread(backend.db, thread_id)
    session = WebhookSession(backend.db, config)
    try:
        if row is None or not await session.attach(thread_id):
            return
        values, _ = await checkpoint_values(backend, thread_id)
        stop = {"status": status[0], "stop_reason": status[1]}
        thread = thread_snapshot(values, row.context, row.segments, stop)
        await session.emit(thread_id, kind, thread, {}, f"{kind}:cli:{row.segments}")
    finally:
        await session.close(flush=flush)
