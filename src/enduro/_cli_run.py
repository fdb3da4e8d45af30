"""`enduro run`, `enduro resume` and the answers that resume a waiting thread.

The answers are `approve`, `reject` and `answer`. This is the CLI's one heavy path (it builds the
graph), kept out of `enduro.cli` so that the read-only commands never import it.

Phases and signals (see `enduro._signals`):
1. starting (configuration, database, the thread row): a signal asks the run to drain, so
   it pauses at its first step boundary; a second cancels the command.
2. running the graph: the first signal drains at the next step boundary (status `paused`,
   stop_reason `signal`); the second stops now (the last checkpoint still holds).
3. teardown, once the segment's outcome is known (last webhook deliveries, the status
   query, the output): a signal stops waiting for deliveries, which stay in the outbox,
   and nothing else. A thread that completed exits 0 with its JSON, whatever arrives.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from langchain_core.tools import BaseTool
from langgraph.runtime import RunControl

from enduro import _cli_webhooks as webhooks_cli
from enduro import threads
from enduro._signals import SignalGate
from enduro.budgets.config import check_budget_config
from enduro.client import Client, ThreadStatus
from enduro.context import ContextOverrides, EnduroContext
from enduro.errors import DatabaseUnreachable, StopReason
from enduro.hitl import cli as hitl_cli
from enduro.nodes.llm import openai_model_factory
from enduro.progress import Progress
from enduro.runner import Outcome, RunOptions, run_tools
from enduro.settings import Settings
from enduro.status import offline_status
from enduro.storage.outage import OutagePolicy
from enduro.webhooks.session import WebhookSession


async def run_or_resume(
    args: argparse.Namespace,
    settings: Settings,
    overrides: ContextOverrides,
    outage: OutagePolicy,
    gate: SignalGate,
) -> tuple[int, ThreadStatus | None]:
    """Run `enduro run` / `enduro resume` to the end of one segment.

    Args:
        args: the parsed command line.
        settings: flags merged over the environment.
        overrides: context overrides from the command line's knobs.
        outage: how long database outages are waited out.
        gate: the process's signal handler.

    Returns:
        The exit code and the thread's status (None if no thread was reached).

    Raises:
        enduro.errors.ConfigError: bad configuration, unknown or busy thread.
    """
    settings.require_model_endpoint()
    hooks = webhooks_cli.config_from_args(args)
    progress = Progress(quiet=args.quiet)
    control = RunControl()
    main_task = asyncio.current_task()
    gate.on_signal(lambda count: _before_run(count, control, progress, main_task))
    tools: list[BaseTool] | None = None
    if args.command == "run":
        context = EnduroContext(model=settings.model, workspace=settings.workspace)
        context = context.with_overrides(overrides)
        # Before the database is touched: e.g. --max-usd on a model with no known price,
        # or an MCP server that does not start.
        check_budget_config(context)
        tools, context = await run_tools(context)
    async with Client(settings.database_url, outage=outage) as client:
        if args.command == "run":
            created = await client.create(args.goal, context=context, thread_id=args.thread_id)
            thread_id, overrides = created.thread_id, ContextOverrides()
            # Hints name the thread as the user does: by its name when it has one.
            shown = created.name or thread_id
            progress.say(f"thread {thread_id}" + (f" ({created.name})" if created.name else ""))
        else:
            thread_id, shown = await client.resolve(args.thread_id), args.thread_id
        answers = await _answers(client, args, thread_id)
        webhooks = WebhookSession(client.backend.db, hooks)
        options = RunOptions(
            overrides=overrides,
            control=control,
            model=openai_model_factory(settings),
            on_update=progress.update,
            keep_checkpoints=args.keep_checkpoints,
            webhooks=webhooks,
            tools=tools,
            answers=answers,
        )
        known: threads.ThreadRow | None = None
        try:
            known = await threads.get_thread(client.backend.db, thread_id)
            outcome = await _segment(client, thread_id, shown, options, progress, gate)
        except DatabaseUnreachable as exc:
            # Before the graph ran: resumable all the same.
            outcome = Outcome(thread_id, "paused", exc.stop_reason)
        await _teardown(webhooks, thread_id, gate, progress)
        status = await _final_status(client, known, outcome)
    _explain(outcome, progress, shown)
    if not args.json and outcome.status not in ("paused", "waiting"):
        progress.say(status.report or "")
    return outcome.exit_code, status


async def _final_status(
    client: Client, known: threads.ThreadRow | None, outcome: Outcome
) -> ThreadStatus:
    """The thread's status, or what this process knows when the database is unreachable.

    The fallback is the outcome and the row as it was read at the start, so `--json` still answers.
    """
    try:
        return await client.status(outcome.thread_id)
    except DatabaseUnreachable as exc:
        print(f"enduro: the database is unreachable: {exc.detail}", file=sys.stderr)
        return ThreadStatus.from_json(
            offline_status(outcome.thread_id, known, outcome.status, outcome.stop_reason)
        )


def _before_run(
    count: int, control: RunControl, progress: Progress, main: asyncio.Task[Any] | None
) -> None:
    if count == 1:
        control.request_drain(StopReason.SIGNAL.value)
        progress.say("stopping at the first step boundary (signal again to stop now)")
    elif main is not None:
        main.cancel()


async def _segment(
    client: Client,
    thread_id: str,
    shown: str,
    options: RunOptions,
    progress: Progress,
    gate: SignalGate,
) -> Outcome:
    """Phase 2: the graph runs in a task of its own, which a second signal cancels."""
    control = options.control
    assert control is not None
    # The thread as the user named it, so that errors name it that way too.
    run = asyncio.ensure_future(client.resume(shown, options))

    def on_signal(count: int) -> None:
        if count == 1:
            control.request_drain(StopReason.SIGNAL.value)
            progress.say("stopping at the next step boundary (signal again to stop now)")
        else:
            run.cancel()

    gate.on_signal(on_signal)
    if gate.count >= 2:
        run.cancel()
    try:
        with progress:
            return await run
    except asyncio.CancelledError:
        if not run.cancelled():
            raise
        progress.say(f"stopped; resume with: enduro resume {shown}")
        return Outcome(thread_id, "paused", StopReason.SIGNAL.value)


async def _teardown(
    webhooks: WebhookSession, thread_id: str, gate: SignalGate, progress: Progress
) -> None:
    """Phase 3: deliver what the thread left pending, for at most the flush time.

    A signal stops the wait (deliveries stay in the outbox) and nothing else does.
    """

    async def flush() -> None:
        # Also for a thread that was complete already: deliver what it left pending.
        with contextlib.suppress(DatabaseUnreachable):
            await webhooks.attach(thread_id)
        await webhooks.close()

    task = asyncio.ensure_future(flush())

    def on_signal(count: int) -> None:
        if not task.done():
            progress.say(
                "not waiting for webhook deliveries: they stay in the outbox "
                "(`enduro webhooks deliver` sends them)"
            )
            task.cancel()

    gate.on_signal(on_signal)
    await asyncio.wait([task])
    if task.cancelled() or task.exception() is not None:
        await webhooks.close(flush=False)


async def _answers(client: Client, args: argparse.Namespace, thread_id: str) -> dict[str, Any]:
    """The resume map of `approve` / `reject` / `answer` (empty for run and resume)."""
    if args.command not in hitl_cli.ANSWER_COMMANDS:
        return {}
    pending = list(await client.interrupts(thread_id))
    item = hitl_cli.choose(args.thread_id, pending, args.interrupt_id, args.command)
    return {item.id: hitl_cli.answer_of(args)}


def _explain(outcome: Outcome, progress: Progress, shown: str) -> None:
    if outcome.status == "waiting":
        progress.say(hitl_cli.waiting_help(shown, list(outcome.interrupts)))
    elif outcome.status == "paused":
        progress.say(f"paused; resume with: enduro resume {shown}")
    elif outcome.status == "failed":
        progress.say(f"failed: {outcome.stop_reason}\nresume with: enduro resume {shown}")
    elif outcome.status == "budget_exhausted":
        flag = (outcome.stop_reason or "").replace("_", "-")
        progress.say(
            f"stopped by {outcome.stop_reason}; raise it and resume: "
            f"enduro resume {shown} --{flag} N"
        )
