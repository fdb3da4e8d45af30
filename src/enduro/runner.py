"""Advance a thread from its last checkpoint: the function any process can call with just a
thread id and the database URL. No state lives in the process that started the run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphDrained
from langgraph.runtime import RunControl
from langgraph.types import Command
from typing_extensions import TypedDict, Unpack

from enduro import threads
from enduro.budgets.config import check_budget_config
from enduro.budgets.ledger import Ledger
from enduro.budgets.limits import deadline_epoch, time_left
from enduro.checkpointing.retention import DEFAULT_KEEP_CHECKPOINTS as DEFAULT_KEEP_CHECKPOINTS
from enduro.checkpointing.retention import prune_thread
from enduro.context import ContextOverrides, EnduroContext
from enduro.errors import ConfigError, StopReason, ThreadBusy, UnknownThread
from enduro.graph import build_graph
from enduro.hitl import waiting
from enduro.hitl.interrupts import Pending, pending_of
from enduro.log import current_thread_id
from enduro.model_call import ModelCallMiddleware
from enduro.models import ModelSource, check_loop, model_name_of
from enduro.state import AgentState
from enduro.storage import Backend, Database, open_backend
from enduro.storage.fencing import Lease, LeaseLost, current_lease
from enduro.storage.leases import HEARTBEAT_SECONDS
from enduro.storage.outage import (
    DatabaseUnreachable,
    OutagePolicy,
    outage_seconds_from_env,
    run_time_limit,
)
from enduro.tools import default_tools
from enduro.tools.mcp import file_sha256, load_mcp_tools
from enduro.webhooks.session import WebhookSession, open_segment

log = logging.getLogger(__name__)

EXIT_CODES = {
    "completed": 0,
    "failed": 1,
    "budget_exhausted": 3,
    "paused": 4,
    "cancelled": 5,
    "waiting": 6,
    # This process lost the lease (paused past its timeout); another one runs the thread.
    "lost": 4,
}
# Long runs take thousands of super-steps; budgets, not the recursion limit, stop them.
RECURSION_LIMIT = 10_000_000

Update = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Outcome:
    """How one segment of a run ended: the thread's status and why it stopped.

    `stop_reason` is None for `completed` (and while waiting); the CLI exits with
    `exit_code`.
    """

    thread_id: str
    status: str
    stop_reason: str | None
    interrupts: tuple[Pending, ...] = ()
    """What a `waiting` thread waits for."""

    @property
    def exit_code(self) -> int:
        """The CLI's exit code for this status (`EXIT_CODES`; 1 for anything unknown)."""
        return EXIT_CODES.get(self.status, 1)


def new_thread_id() -> str:
    """A new random thread id (a UUID4 string)."""
    # A UUID, because the Agent Server (langgraph dev, Studio) accepts nothing else.
    return str(uuid.uuid4())


async def create_run(
    backend: Backend,
    goal: str,
    context: EnduroContext,
    thread_id: str | None = None,
    *,
    name: str | None = None,
) -> str:
    """Create the row of a new thread; returns its id.

    Args:
        backend: the open database.
        goal: the user's goal.
        context: the run's knobs and limits.
        thread_id: the id to use, as given (None: a new random UUID). A UUID keeps the
            thread openable in `langgraph dev` and Studio; `enduro.Client.create` maps a
            name to one.
        name: the thread's name, stored and shown next to its id.

    Raises:
        ConfigError: a thread with this id or name exists already.
    """
    thread_id = thread_id or new_thread_id()
    shown = name or thread_id
    if await threads.get_thread(backend.db, thread_id) is not None or (
        name is not None and await threads.find_thread_id(backend.db, name) is not None
    ):
        raise ConfigError(
            f"thread {shown!r} already exists: use `enduro resume {shown}` to continue "
            "it, or pick another --thread-id"
        )
    await threads.create_thread(backend.db, thread_id, goal, context, name)
    return thread_id


def run_config(thread_id: str, segment: int) -> RunnableConfig:
    """Tagged so that every segment of a multi-hour run (first run and each resume) groups
    under one thread in LangSmith."""
    return {
        "configurable": {"thread_id": thread_id},
        "recursion_limit": RECURSION_LIMIT,
        "run_name": "enduro",
        "tags": [f"thread:{thread_id}"],
        "metadata": {"thread_id": thread_id, "enduro_segment": segment},
    }


class RunFields(TypedDict, total=False):
    """`RunOptions`' fields as keyword arguments of `advance_thread` (see there)."""

    overrides: ContextOverrides
    model: ModelSource
    tools: Sequence[BaseTool] | None
    control: RunControl | None
    on_update: Update | None
    keep_checkpoints: int
    webhooks: WebhookSession | None
    middleware: Sequence[ModelCallMiddleware]
    answers: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How one segment of a thread runs: everything but the thread id and the database.

    Build one per job, or pass the same fields as keywords to `advance_thread`.
    """

    overrides: ContextOverrides = field(default_factory=ContextOverrides)
    """Knobs replacing the thread's stored ones (limits, model name, prices); None fields
    carry over. A plain mapping is accepted and checked (`ContextOverrides.from_mapping`)."""
    model: ModelSource = None
    """A chat model, a factory `(EnduroContext) -> BaseChatModel`, or None for ChatOpenAI
    from OPENAI_API_KEY / OPENAI_BASE_URL."""
    tools: Sequence[BaseTool] | None = None
    """Tools act may call; None: the workspace file tools and fetch_url."""
    control: RunControl | None = None
    """LangGraph's drain handle: `request_drain(reason)` stops at the next step boundary."""
    on_update: Update | None = None
    """Called with every super-step's `updates` stream chunk (progress display)."""
    keep_checkpoints: int = DEFAULT_KEEP_CHECKPOINTS
    """Checkpoints kept per thread; older ones are pruned while the run goes."""
    webhooks: WebhookSession | None = None
    """The caller's webhook session; None configures one from the environment."""
    middleware: Sequence[ModelCallMiddleware] = ()
    """Wrappers of every model call (`enduro.model_call`), outermost first; the budget
    always runs inside them."""
    answers: Mapping[str, Any] = field(default_factory=dict)
    """`{interrupt_id: answer}` for a waiting thread (see `enduro.hitl.interrupts`); without
    them a waiting thread stays waiting and nothing runs."""

    def __post_init__(self) -> None:
        """Check the fields.

        Raises:
            ConfigError: unknown override names, or `keep_checkpoints` below 1.
        """
        if not isinstance(self.overrides, ContextOverrides):
            # Callers of the dict-based API (and JSON job payloads) keep working, checked.
            overrides = ContextOverrides.from_mapping(self.overrides)
            object.__setattr__(self, "overrides", overrides)
        if self.keep_checkpoints < 1:
            raise ConfigError(
                f"keep_checkpoints={self.keep_checkpoints}: keep at least 1 (the latest)"
            )

    @classmethod
    def of(cls, options: RunOptions | None, fields: RunFields) -> RunOptions:
        """`options` (or the defaults) with `fields` replacing what they name."""
        base = options or cls()
        return dataclasses.replace(base, **fields) if fields else base


async def advance_thread(
    thread_id: str,
    *,
    database_url: str,
    options: RunOptions | None = None,
    db_outage_timeout: float | None = None,
    **fields: Unpack[RunFields],
) -> Outcome:
    """Run thread `thread_id` from its last checkpoint until it finishes, drains or fails.

    Any process can call this with just the id and the database URL (a worker per job:
    `asyncio.run(advance_thread(tid, database_url=url))`).

    Args:
        thread_id: a thread created by `create_run` (or `enduro run`).
        database_url: `postgresql://…` or a SQLite file path.
        options: how to run this segment; keywords (`model=…`, `tools=…`,
            `overrides=…`, …, the fields of `RunOptions`) replace its fields.
        db_outage_timeout: seconds a database outage is waited out before the segment
            pauses with `stop_reason` `database_unreachable: …` (default
            ENDURO_DB_OUTAGE_TIMEOUT, else 60).
        **fields: `RunOptions` fields.

    Returns:
        The segment's outcome; `exit_code` maps it to the CLI's exit code.

    Raises:
        UnknownThread: no such thread in this database.
        ConfigError: the thread is leased by a live process, or its limits cannot be
            enforced (e.g. a dollar limit on a model with no price).
    """
    run = RunOptions.of(options, fields)
    if db_outage_timeout is None:
        db_outage_timeout = outage_seconds_from_env()
    outage = OutagePolicy(timeout=db_outage_timeout)
    async with open_backend(database_url, outage=outage) as backend:
        return await advance_with_backend(backend, thread_id, run)


async def advance_with_backend(
    backend: Backend,
    thread_id: str,
    options: RunOptions | None = None,
    **fields: Unpack[RunFields],
) -> Outcome:
    """`advance_thread` on a backend the caller already opened (the CLI's).

    `thread_id` may also be a thread's name (`enduro.names`)."""
    run = RunOptions.of(options, fields)
    given, thread_id = thread_id, await threads.resolve_thread_id(backend.db, thread_id)
    token = current_thread_id.set(thread_id)
    # `_advance` sets the lease it claims; this context's writes are fenced by it until the
    # segment ends, and not after.
    lease_token = current_lease.set(None)
    try:
        return await _advance(backend, thread_id, run)
    except UnknownThread as exc:
        # Say it as the caller did: a name the database does not hold, not its UUID.
        raise UnknownThread(str(exc).replace(repr(thread_id), repr(given))) from None
    finally:
        current_lease.reset(lease_token)
        current_thread_id.reset(token)


async def _advance(backend: Backend, thread_id: str, run: RunOptions) -> Outcome:
    db = backend.db
    row = await threads.load_thread(backend, thread_id)
    if row is None:
        raise UnknownThread(
            f"unknown thread {thread_id!r} in this database: `enduro list` shows the threads "
            "it holds; check --db / ENDURO_DATABASE_URL"
        )
    if row.status == "completed":
        return Outcome(thread_id, "completed", None)
    # Limits given on this command line replace the stored ones; the rest carry over.
    context = row.context.with_overrides(run.overrides)
    # Fail closed before taking the lease: e.g. a dollar limit on a model with no price.
    fixed = run.model if isinstance(run.model, BaseChatModel) else None
    check_budget_config(context, model_name_of(fixed, context.model) if fixed else None)
    if fixed is not None:
        # A model whose client an earlier job used on another event loop cannot work here.
        check_loop(fixed)
    if run.tools is not None:
        tools = list(run.tools)
    else:
        tools, context = await run_tools(context)
    # Before the lease: a waiting thread with nothing to answer stays waiting, untouched.
    pending = await waiting.thread_interrupts(backend, thread_id)
    answers = dict(run.answers)
    if pending:
        expired = waiting.timeout_answers(pending, context.approval_timeout_seconds)
        # The timeout is a safety net: an answer that arrives after it must not run the call.
        for late in sorted(expired.keys() & answers.keys()):
            log.warning("interrupt %s expired before it was answered; rejected", late)
        answers = {**answers, **expired}
        if not answers:
            return Outcome(thread_id, "waiting", None, tuple(pending))
    lease = await threads.claim(db, thread_id, context)
    if lease is None:
        raise ThreadBusy(
            f"thread {thread_id!r} is being run by {row.owner} right now; wait for it, or "
            "`enduro cancel` it first"
        )
    current_lease.set(lease)
    segment = row.segments + 1
    events = None
    try:
        events = await open_segment(db, thread_id, run.webhooks)
        graph = build_graph(
            model=run.model,
            tools=tools,
            checkpointer=backend.saver_for(lease),
            cancel_requested=lambda tid: threads.is_cancel_requested(db, tid),
            events=events.handler,
            ledger=Ledger(db),
            middleware=run.middleware,
        )
        config = run_config(thread_id, segment)
        snapshot = await graph.aget_state(config)
    except BaseException as exc:
        # Nothing ran yet; give the lease back so the thread is not left `running` under a
        # live process that no longer runs it.
        if events is not None:
            await events.close()
        reason = (
            StopReason.SIGNAL.value if isinstance(exc, asyncio.CancelledError) else f"{exc}"[:2000]
        )
        await asyncio.shield(_release(db, thread_id, "paused", reason, lease))
        raise
    # A fresh thread starts from the goal; one stopped mid-graph continues from its pending
    # tasks (with the answers of the interrupts it waited on); one that reached finish
    # (limit, cancel) re-enters and plan keeps its plan.
    graph_input: AgentState | Command[Any] | None = None if snapshot.next else {"goal": row.goal}
    log.info("segment %d starting (%s)", segment, "resume" if graph_input is None else "enter")
    if answers:
        graph_input = Command(resume=answers)
    answered = [_brief(p) for p in pending if p.id in answers]
    await events.started(row, snapshot.values, context, segment, answered)
    beat = asyncio.create_task(_heartbeat(backend, lease))
    outcome: Outcome | None = None
    try:
        since_prune = 0
        # A database outage is not waited out past the run's own time limits.
        limit = time_left(
            max_minutes=context.max_minutes,
            active_seconds=await Ledger(db).active_seconds(thread_id),
            deadline=deadline_epoch(context.deadline),
            now=time.time(),
        )
        with run_time_limit(limit):
            async for update in graph.astream(
                graph_input,
                config,
                context=context,
                durability="sync",
                control=run.control or RunControl(),
                stream_mode="updates",
            ):
                if run.on_update is not None and "__interrupt__" not in update:
                    run.on_update(update)
                since_prune += 1
                if since_prune >= run.keep_checkpoints:
                    await prune_thread(db, thread_id, run.keep_checkpoints)
                    since_prune = 0
        outcome = await _outcome_after(backend, graph, config)
    except GraphDrained as drained:
        log.info("drained at a super-step boundary: %s", drained.reason)
        outcome = Outcome(thread_id, "paused", drained.reason)
    except LeaseLost as lost:
        # Another process took the thread over while this one was paused: write nothing.
        log.error("%s", lost)
        outcome = Outcome(thread_id, "lost", str(lost))
    except asyncio.CancelledError:
        # Second signal: stop now. The last checkpoint (durability="sync") still holds.
        outcome = Outcome(thread_id, "paused", StopReason.SIGNAL.value)
        raise
    except DatabaseUnreachable as exc:
        # Like a provider outage that outlasted its retries: resumable from the last
        # checkpoint, which the database still holds.
        log.error("pausing: %s", exc.stop_reason)
        outcome = Outcome(thread_id, "paused", exc.stop_reason)
    except Exception as exc:
        log.exception("run failed")
        outcome = Outcome(thread_id, "failed", f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
        if outcome is not None and outcome.status != "lost":
            # Said while the lease is still held: outbox writes are fenced by it, so an event
            # written after the release would be refused (and run.waiting / run.paused lost).
            try:
                if outcome.status == "waiting":
                    await events.waiting([_brief(p) for p in outcome.interrupts])
                await events.ended(outcome.status, outcome.stop_reason)
            finally:
                await asyncio.shield(
                    _release(db, thread_id, outcome.status, outcome.stop_reason, lease)
                )
            with contextlib.suppress(Exception):
                await prune_thread(db, thread_id, run.keep_checkpoints)
        await events.close()
    return outcome


async def _release(
    db: Database, thread_id: str, status: str, stop_reason: str | None, lease: Lease
) -> None:
    """Record the segment's outcome, unless the database is gone: then the row keeps this
    process as its owner, which `status` shows as `paused (crashed)` once the process has
    exited, and `enduro resume` continues it from the last checkpoint."""
    try:
        await threads.release(db, thread_id, status, stop_reason, lease)
    except DatabaseUnreachable as exc:
        log.error("could not record the outcome %r (%s): %s", status, stop_reason, exc.detail)


def _brief(item: Pending) -> dict[str, Any]:
    """An interrupt as events show it: never the tool's arguments."""
    return {"id": item.id, "kind": item.kind, "tool": item.tool}


async def run_tools(context: EnduroContext) -> tuple[list[BaseTool], EnduroContext]:
    """The tools of a run configured only by its context (the CLI, a worker): the built-in
    ones, and the MCP servers' when the run has an MCP config, loaded again from its path.
    Returns the context with the config's current hash (a warning is logged when it changed
    since the run last loaded it).

    Raises:
        ConfigError: the MCP config is invalid or one of its servers failed to start.
    """
    tools = default_tools(post=bool(context.post_hosts))
    if not context.mcp_config:
        return tools, context
    try:
        digest = await asyncio.to_thread(file_sha256, context.mcp_config)
    except OSError as exc:
        raise ConfigError(
            f"the run's MCP config {context.mcp_config!r} cannot be read ({exc}); restore it "
            "or give another with --mcp-config FILE"
        ) from None
    if context.mcp_config_sha256 and digest != context.mcp_config_sha256:
        log.warning(
            "MCP config %s changed since the run last loaded it; using it as it is now",
            context.mcp_config,
        )
    tools += await load_mcp_tools(context.mcp_config)
    return tools, dataclasses.replace(context, mcp_config_sha256=digest)


async def _outcome_after(backend: Backend, graph: Any, config: RunnableConfig) -> Outcome:
    """How a segment whose stream ended stands: waiting on interrupts, or the status finish
    wrote."""
    thread_id = str(config["configurable"]["thread_id"])
    snapshot = await graph.aget_state(config)
    pending = pending_of(snapshot.interrupts)
    if pending:
        await waiting.record_seen(backend.db, thread_id, pending)
        seen = await waiting.first_seen(backend.db, thread_id)
        return Outcome(thread_id, "waiting", None, tuple(waiting.with_first_seen(pending, seen)))
    values = snapshot.values
    return Outcome(thread_id, values.get("status", "failed"), values.get("stop_reason"))


async def _heartbeat(backend: Backend, lease: Lease) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            if not await threads.heartbeat(backend.db, lease.thread_id, lease):
                # Taken over; the run's next fenced write raises LeaseLost and stops it.
                log.error("%s", LeaseLost(lease))
                return
        except Exception as exc:  # the database may blip; the next beat retries
            log.warning("heartbeat failed: %s", exc)
