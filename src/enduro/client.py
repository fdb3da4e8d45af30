"""`enduro.Client`: threads over one database URL.

For scripts, workers, the dashboard and the CLI (which is a thin wrapper over it).

    async with Client("postgresql://…") as client:
        status = await client.status("nightly-report-7")
        print(status.status, status.usage["usd"])
        print(json.dumps(status.to_json()))      # exactly `enduro status --json`

Invariants:
- Reading a thread (`status`, `list`, `report`, `cancel`) never imports LangGraph's graph
  modules or langchain-openai: `create`/`resume` import the runner only when called. This
  keeps `enduro status` about as fast as opening the database (bench/cli.py).
- The typed objects wrap the status contract rather than re-deriving it: `to_json()` is
  the very dict `enduro.status.build_status` built, so the CLI's JSON and the client's
  can never drift apart.
- Every error is an `enduro.errors.EnduroError` (`UnknownThread`, `ConfigError`, …) whose
  message says what to do; nothing here prints.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack

from enduro import threads
from enduro._redact import redact
from enduro.budgets.report import load_spend
from enduro.context import EnduroContext
from enduro.errors import ConfigError, DatabaseUnavailable, StopReason, UnknownThread
from enduro.hitl.interrupts import Pending
from enduro.hitl.waiting import thread_interrupts
from enduro.names import parse_thread_ref
from enduro.settings import Settings
from enduro.status import build_status, checkpoint_values
from enduro.storage import Backend, open_backend
from enduro.storage.outage import OutagePolicy

if TYPE_CHECKING:
    from enduro.runner import Outcome, RunFields, RunOptions

__all__ = ["CancelResult", "Client", "ThreadStatus", "ThreadSummary", "WebhookBacklog"]

EXIT_CODES: Mapping[str, int] = {
    "completed": 0,
    "failed": 1,
    "budget_exhausted": 3,
    "paused": 4,
    "cancelled": 5,
    "waiting": 6,
}
"""The CLI's exit code for a thread in each status (anything else: 1)."""

RESUMABLE = frozenset({"paused", "budget_exhausted", "cancelled", "failed"})


@dataclass(frozen=True)
class ThreadStatus:
    """One thread as `enduro status --json` shows it.

    The attributes are the contract's main fields, typed; `to_json()` is the whole status
    object (see DESIGN.md "Status JSON"), byte for byte what the CLI prints.
    """

    thread_id: str
    """The thread's id (a UUID for threads enduro creates)."""
    name: str | None
    """The name it was created with (`--thread-id nightly-report-7`), or None."""
    goal: str
    """The goal the run was started with."""
    status: str
    """`running`, `waiting`, `paused`, `completed`, `budget_exhausted`, `cancelled` or
    `failed`."""
    stop_reason: str | None
    """The limit or cause (`max_usd`, `signal`, `cancel`, `insufficient_quota: …`), or
    None; `StopReason.of(stop_reason)` gives its code."""
    usage: Mapping[str, Any]
    """`usd`, `llm_calls`, `tool_calls`, `iterations`, `input_tokens`, `output_tokens`,
    `active_seconds`; dollars and model calls come from the spend ledger."""
    limits: Mapping[str, Any]
    """The thread's limits, keyed like the CLI options (`max_usd`, …); None when unset."""
    report: str | None
    """The final or partial report, or None while the first step runs."""
    data: Mapping[str, Any] = field(repr=False)
    """The complete status object (everything `to_json` returns)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ThreadStatus:
        """Wrap a status object (as printed by `enduro status --json`)."""
        return cls(
            thread_id=data["thread_id"],
            name=data.get("name"),
            goal=data.get("goal", ""),
            status=data["status"],
            stop_reason=data.get("stop_reason"),
            usage=data.get("usage") or {},
            limits=data.get("limits") or {},
            report=data.get("report"),
            data=dict(data),
        )

    @property
    def resumable(self) -> bool:
        """Whether `resume` can continue it (paused, stopped by a limit, cancelled, failed)."""
        return self.status in RESUMABLE

    @property
    def reason(self) -> StopReason | None:
        """The `StopReason` code of `stop_reason`, when it has one."""
        return StopReason.of(self.stop_reason)

    def interrupts_pending(self) -> list[Pending]:
        """What a `waiting` thread waits for (the status JSON's `interrupts`)."""
        from enduro.hitl.cli import pending_from_json

        return pending_from_json(list(self.data.get("interrupts") or []))

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this status (0 completed … 6 waiting; 1 otherwise)."""
        return EXIT_CODES.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        """The status contract, as `enduro status --json` prints it (a fresh copy).

        Keys: `thread_id`, `status`, `stop_reason`, `plan`, `progress`, `usage`, `limits`, `report`,
        `updated_at`, …
        """
        return dict(self.data)


@dataclass(frozen=True)
class ThreadSummary:
    """One line of `enduro list`."""

    thread_id: str
    """The thread's id."""
    status: str
    """Status as users should see it (a crashed `running` thread shows `paused`)."""
    stop_reason: str | None
    """As in `ThreadStatus`."""
    goal: str
    """The goal the run was started with."""
    name: str | None = None
    """The thread's name, when it was created with one."""

    @property
    def resumable(self) -> bool:
        """Whether `resume` can continue it."""
        return self.status not in ("completed", "running")

    def to_json(self) -> dict[str, Any]:
        """The thread as one item of `enduro list --json`.

        Keys: `thread_id`, `name`, `status`, `stop_reason`, `goal`, `resumable`.
        """
        return {
            "thread_id": self.thread_id,
            "name": self.name,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "goal": self.goal,
            "resumable": self.resumable,
        }


@dataclass(frozen=True)
class WebhookBacklog:
    """The webhook outbox as `enduro webhooks list` shows it: endpoints and deliveries.

    URLs are redacted (credentials and query strings often hold tokens).
    """

    endpoints: list[dict[str, Any]]
    """`thread_id`, `endpoint_id`, `url`, `secret_fingerprint`, `state`,
    `disabled_reason` of each endpoint, ordered by thread and endpoint."""
    deliveries: list[dict[str, Any]]
    """One row per (event, endpoint): `thread_id`, `endpoint_id`, `url`, `seq`, `type`,
    `state` (`pending`, `dead`, `delivered`), `attempts`, `next_attempt_at` (Unix
    seconds), `last_error`, …; oldest first."""

    def to_json(self) -> dict[str, Any]:
        """`{"endpoints": [...], "deliveries": [...]}`, as `webhooks list --json` prints."""
        return {"endpoints": self.endpoints, "deliveries": self.deliveries}


CancelAction = Literal["requested", "cancelled", "already_finished"]


@dataclass(frozen=True)
class CancelResult:
    """What `cancel` did, and the thread's status afterwards."""

    action: CancelAction
    """`requested`: the thread is running; its process finishes it gracefully at its next
    step boundary. `cancelled`: no process ran it; it is `cancelled` now.
    `already_finished`: it was `completed` or `cancelled` already; nothing changed."""
    status: ThreadStatus
    """The thread's status after the cancel."""


class Client:
    """Read and drive enduro threads stored in one database.

    Args:
        database_url: `postgresql://…`, or a SQLite file path (`sqlite:///abs/path` too);
            None reads `ENDURO_DATABASE_URL`, else `.enduro/enduro.sqlite`.
        create_database: whether a missing SQLite file may be created. Read-only tools
            pass False, so a typo in the path is an error instead of a new, empty database.
        outage: how database outages are waited out (default: ENDURO_DB_OUTAGE_TIMEOUT,
            else 60 s, then `DatabaseUnreachable`).

    Use it as an async context manager (one connection pool for every call), or call
    methods directly: each then opens and closes the database around itself.

    Raises:
        enduro.errors.ConfigError: (from any method) the database URL is unsupported or
            the database cannot be reached; the message names it, password redacted.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        create_database: bool = True,
        outage: OutagePolicy | None = None,
    ) -> None:
        self.database_url = database_url or Settings.from_env().database_url
        self.create_database = create_database
        self.outage = outage
        self._backend: Backend | None = None
        self._opened: AbstractAsyncContextManager[Backend] | None = None
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __repr__(self) -> str:
        return f"Client({redact(self.database_url)!r})"

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the database (and create or upgrade enduro's tables). Idempotent.

        The connection belongs to the running event loop (a pool's connections cannot be
        used from another); a call made later under another loop (a worker's
        `asyncio.run` per job) connects again there.
        """
        if self._backend is not None and self._on_this_loop():
            return
        # A connection of another loop is unusable here, and that loop closed it (asyncio.run
        # finalizes open async generators) or owns it: forget it, never touch it from here.
        self._backend = self._opened = self._loop = None
        opened = self._open()
        self._backend = await opened.__aenter__()
        self._opened = opened
        self._loop = weakref.ref(asyncio.get_running_loop())

    async def close(self) -> None:
        """Close the database. Idempotent; the client can `connect` again."""
        opened, mine = self._opened, self._on_this_loop()
        self._opened, self._backend, self._loop = None, None, None
        if opened is not None and mine:
            await opened.__aexit__(None, None, None)

    def _on_this_loop(self) -> bool:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return False
        return self._loop is not None and self._loop() is running

    @property
    def backend(self) -> Backend:
        """The open database (checkpoint saver and enduro's tables).

        Raises:
            RuntimeError: the client is not connected in the running event loop (use it as
                an async context manager, or call `connect` first).
        """
        if self._backend is None:
            raise RuntimeError("Client is not connected: use `async with Client(url)`")
        if not self._on_this_loop():
            raise RuntimeError(
                "Client was connected under another event loop, whose connections cannot be "
                "used here: `await client.connect()` in this loop first"
            )
        return self._backend

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[Backend]:
        if self._backend is not None:
            await self.connect()  # again, if it was made under another event loop
            assert self._backend is not None
            yield self._backend
            return
        async with self._open() as backend:
            yield backend

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Backend]:
        """The database, with any failure to open it reported as `DatabaseUnavailable`."""
        opened = open_backend(self.database_url, create=self.create_database, outage=self.outage)
        try:
            backend = await opened.__aenter__()
        except ConfigError as exc:
            raise DatabaseUnavailable(str(exc)) from exc.__cause__
        try:
            yield backend
        except BaseException as exc:
            if not await opened.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await opened.__aexit__(None, None, None)

    async def resolve(self, thread: str) -> str:
        """The id of a thread given by id or by name (`enduro.names`).

        Returns:
            The thread's id; for an unknown name, the id the name would have.
        """
        async with self._session() as backend:
            return await threads.resolve_thread_id(backend.db, thread)

    async def status(self, thread: str) -> ThreadStatus:
        """The thread's status, as `enduro status THREAD --json` prints it.

        Args:
            thread: the thread's id or name.

        Raises:
            enduro.errors.UnknownThread: no such thread in this database.
        """
        async with self._session() as backend:
            return await self._status(backend, thread)

    async def _status(self, backend: Backend, ref: str) -> ThreadStatus:
        thread_id = await threads.resolve_thread_id(backend.db, ref)
        row = await threads.load_thread(backend, thread_id)
        if row is None:
            raise UnknownThread(
                f"unknown thread {ref!r}: `enduro list` shows the threads in {redact(backend.url)}"
            )
        values, checkpoint_id = await checkpoint_values(backend, thread_id)
        spend = await load_spend(backend.db, thread_id)
        pending = await thread_interrupts(backend, thread_id)
        return ThreadStatus.from_json(build_status(row, values, checkpoint_id, spend, pending))

    async def list(self, limit: int = 100) -> list[ThreadSummary]:
        """The most recently updated threads, newest first.

        Threads started from `langgraph dev` or Studio (checkpoints but no enduro row yet)
        are adopted first, so they are listed too.

        Args:
            limit: at most this many threads.
        """
        async with self._session() as backend:
            await threads.adopt_orphans(backend)
            rows = await threads.list_threads(backend.db, limit)
        out = []
        for row in rows:
            status, reason = row.effective_status()
            out.append(ThreadSummary(row.thread_id, status, reason, row.goal, row.name))
        return out

    async def report(self, thread: str) -> str | None:
        """The thread's final report, or its partial report if it stopped early.

        Returns:
            The report text; None while the thread is running its first step.

        Raises:
            enduro.errors.UnknownThread: no such thread in this database.
        """
        return (await self.status(thread)).report

    async def cancel(self, thread: str) -> CancelResult:
        """Cancel a thread.

        A running one stops gracefully at its next step boundary (its own process writes the final
        report); any other is marked `cancelled` at once and its webhook subscribers get
        `run.cancelled`.

        Raises:
            enduro.errors.UnknownThread: no such thread in this database.
        """
        async with self._session() as backend:
            before = await self._status(backend, thread)
            if before.status == "queued" and await self._cancel_queued(backend, before):
                action: CancelAction = "cancelled"
            elif before.status in ("running", "queued"):
                await threads.request_cancel(backend.db, before.thread_id)
                if before.status == "running" and backend.db.dialect == "postgres":
                    # A worker may run it: procrastinate's abort too (the flag is what
                    # makes it stop gracefully).
                    from enduro.workers.submit import cancel_queued

                    await cancel_queued(backend, before.thread_id)
                action = "requested"
            elif before.status in ("completed", "cancelled"):
                return CancelResult("already_finished", before)
            else:
                await threads.release(
                    backend.db, before.thread_id, "cancelled", StopReason.CANCEL.value
                )
                # Imported here: the webhook machinery is heavy, and only this branch
                # needs it.
                from enduro.webhooks.session import thread_cancelled

                await thread_cancelled(backend, before.thread_id)
                action = "cancelled"
            return CancelResult(action, await self._status(backend, before.thread_id))

    async def _cancel_queued(self, backend: Backend, before: ThreadStatus) -> bool:
        """Cancel a queued thread's job and mark the thread `cancelled`.

        Returns False when a worker took the job meanwhile (the thread is running then).
        """
        from enduro.webhooks.session import thread_cancelled
        from enduro.workers.submit import cancel_queued

        tid = before.thread_id
        await threads.request_cancel(backend.db, tid)  # in case a worker claims it now
        await cancel_queued(backend, tid)
        row = await threads.get_thread(backend.db, tid)
        if row is None or row.status != "queued":
            return False
        await threads.release(backend.db, tid, "cancelled", StopReason.CANCEL.value)
        await thread_cancelled(backend, tid)
        return True

    async def webhooks(
        self, thread: str | None = None, *, include_delivered: bool = False
    ) -> WebhookBacklog:
        """Webhook endpoints and undelivered (pending, dead) events.

        Args:
            thread: only this thread's (id or name); None for every thread.
            include_delivered: delivered events too.
        """
        from dataclasses import asdict

        from enduro.webhooks import outbox

        states = ("pending", "dead", "delivered") if include_delivered else ("pending", "dead")
        async with self._session() as backend:
            if thread is not None:
                thread = await threads.resolve_thread_id(backend.db, thread)
            endpoints = await outbox.endpoints(backend.db, thread)
            rows = await outbox.deliveries(backend.db, thread_id=thread, states=states)
        return WebhookBacklog(
            endpoints=[{**asdict(e), "url": redact(e.url)} for e in endpoints],
            deliveries=[{**r, "url": redact(r["url"])} for r in rows],
        )

    async def create(
        self,
        goal: str,
        *,
        context: EnduroContext | None = None,
        thread_id: str | None = None,
    ) -> ThreadStatus:
        """Create a thread for `goal` without running it (`resume` runs it).

        Args:
            goal: what the agent should achieve.
            context: model, limits and knobs (default: `EnduroContext()`, which reads
                ENDURO_MODEL and ENDURO_WORKSPACE).
            thread_id: the id to use, or a name (mapped to a stable UUID and stored as
                the thread's `name`, `enduro.names`); default: a new UUID.

        Returns:
            The new thread's status (`paused`, nothing done yet).

        Raises:
            enduro.errors.ConfigError: the id is taken, or a limit cannot be enforced
                (e.g. a dollar limit on a model with no known price).
        """
        from enduro.budgets.config import check_budget_config
        from enduro.runner import create_run

        context = context or EnduroContext()
        check_budget_config(context)
        ref = parse_thread_ref(thread_id) if thread_id else None
        async with self._session() as backend:
            created = await create_run(
                backend,
                goal,
                context,
                ref.thread_id if ref else None,
                name=ref.name if ref else None,
            )
            return await self._status(backend, created)

    async def resume(
        self, thread: str, options: RunOptions | None = None, **fields: Unpack[RunFields]
    ) -> Outcome:
        """Advance the thread from its last checkpoint until it finishes, drains or fails.

        It runs in this process (as `enduro.advance_thread` does, on this client's database).

        Args:
            thread: the thread's id or name.
            options: how to run the segment (`enduro.runner.RunOptions`: overrides,
                model, tools, control, on_update, keep_checkpoints, webhooks).
            **fields: `RunOptions` fields, replacing those of `options`.

        Returns:
            The segment's `Outcome` (`status`, `stop_reason`, `exit_code`); `status()`
            gives the full picture.

        Raises:
            enduro.errors.UnknownThread: no such thread in this database.
            enduro.errors.ThreadBusy: another live process is running it.
            enduro.errors.ConfigError: an override is invalid.
        """
        from enduro.runner import advance_with_backend

        async with self._session() as backend:
            return await advance_with_backend(backend, thread, options, **fields)

    async def run(
        self,
        goal: str,
        *,
        context: EnduroContext | None = None,
        thread_id: str | None = None,
        options: RunOptions | None = None,
        **fields: Unpack[RunFields],
    ) -> Outcome:
        """`create` a thread for `goal` and `resume` it until the segment ends.

        Args:
            goal: what the agent should achieve.
            context: as `create` takes it.
            thread_id: as `create` takes it.
            options: as `resume` takes it.
            **fields: as `resume` takes them.
        """
        created = await self.create(goal, context=context, thread_id=thread_id)
        return await self.resume(created.thread_id, options, **fields)

    async def interrupts(self, thread: str) -> Sequence[Pending]:
        """What a waiting thread waits for: its pending interrupts (empty when none).

        Raises:
            enduro.errors.UnknownThread: no such thread in this database.
        """
        return (await self.status(thread)).interrupts_pending()

    async def approve(
        self,
        thread: str,
        *,
        interrupt_id: str | None = None,
        args: Mapping[str, Any] | None = None,
        options: RunOptions | None = None,
        **fields: Unpack[RunFields],
    ) -> Outcome:
        """Approve a waiting tool call and continue the thread (as `enduro approve`).

        With `args` the call runs with those instead. The thread continues in this process until the
        segment ends.

        Args:
            thread: the thread's id.
            interrupt_id: which interrupt; may be left out when only one is pending.
            args: new arguments for the call (an edit).
            options: as `resume` takes it; **fields too.

        Raises:
            enduro.errors.NotWaiting: nothing pending, an unknown id, several pending and
                no id, or a question (answer it instead).
        """
        answer: dict[str, Any] = {"decision": "approve"}
        if args is not None:
            answer = {"decision": "edit", "args": dict(args)}
        return await self._answer(thread, "approve", answer, interrupt_id, options, fields)

    async def reject(
        self,
        thread: str,
        *,
        interrupt_id: str | None = None,
        reason: str | None = None,
        options: RunOptions | None = None,
        **fields: Unpack[RunFields],
    ) -> Outcome:
        """Reject a waiting tool call and continue the thread (as `enduro reject`).

        The model reads `reason` as the call's result. Raises as `approve` does.
        """
        answer = {"decision": "reject", "reason": reason}
        return await self._answer(thread, "reject", answer, interrupt_id, options, fields)

    async def answer(
        self,
        thread: str,
        text: str,
        *,
        interrupt_id: str | None = None,
        options: RunOptions | None = None,
        **fields: Unpack[RunFields],
    ) -> Outcome:
        """Answer a waiting question and continue the thread (as `enduro answer`).

        The answer may instead say what happened to a call whose outcome was unknown. Raises as
        `approve` does.
        """
        value = {"decision": "answer", "answer": text}
        return await self._answer(thread, "answer", value, interrupt_id, options, fields)

    async def _answer(
        self,
        thread: str,
        command: str,
        value: dict[str, Any],
        interrupt_id: str | None,
        options: RunOptions | None,
        fields: RunFields,
    ) -> Outcome:
        from enduro.hitl.cli import choose
        from enduro.runner import RunOptions as Options

        async with self._session() as backend:
            if await threads.load_thread(backend, thread) is None:
                raise UnknownThread(
                    f"unknown thread {thread!r}: `enduro list` shows the threads in "
                    f"{redact(backend.url)}"
                )
            item = choose(thread, await thread_interrupts(backend, thread), interrupt_id, command)
        run = Options.of(options, fields)
        answers = {**run.answers, item.id: value}
        return await self.resume(thread, run, answers=answers)

    # Synchronous conveniences, for scripts and notebooks without an event loop.

    def status_sync(self, thread: str) -> ThreadStatus:
        """`status` from synchronous code (runs its own event loop)."""
        return asyncio.run(self.status(thread))

    def list_sync(self, limit: int = 100) -> Sequence[ThreadSummary]:
        """`list` from synchronous code (runs its own event loop)."""
        return asyncio.run(self.list(limit))
