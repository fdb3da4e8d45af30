"""The `enduro` command line. Human output goes to stderr; `--json` prints one JSON object
on stdout at the end. Exit codes: 0 completed, 1 failed, 2 usage or configuration error,
3 budget limit, 4 paused (resumable), 5 cancelled."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from typing import Any

from langgraph.runtime import RunControl

from enduro._redact import redact
from enduro.budgets.cli_flags import add_budget_flags, budget_overrides
from enduro.budgets.config import check_budget_config
from enduro.budgets.report import load_spend
from enduro.checkpointing import threads
from enduro.checkpointing.backend import Backend, open_backend
from enduro.checkpointing.outage import (
    DEFAULT_OUTAGE_SECONDS,
    DatabaseUnreachable,
    OutagePolicy,
    outage_seconds_from_env,
)
from enduro.cliargs import number
from enduro.context import ContextOverrides, EnduroContext
from enduro.dashboard import cli as dashboard_cli
from enduro.errors import ConfigError, StopReason, UnknownThread
from enduro.log import setup_logging
from enduro.nodes.llm import openai_model_factory
from enduro.progress import Progress
from enduro.runner import (
    DEFAULT_KEEP_CHECKPOINTS,
    Outcome,
    RunOptions,
    advance_with_backend,
    create_run,
)
from enduro.settings import Settings
from enduro.status import build_status, checkpoint_values, offline_status
from enduro.webhooks import cli as webhooks_cli
from enduro.webhooks.session import WebhookSession

LIMIT_FLAGS: tuple[tuple[str, type], ...] = (
    ("max_usd", float),
    ("max_minutes", float),
    ("max_iterations", int),
    ("max_llm_calls", int),
    ("max_tool_calls", int),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="enduro", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="postgresql://… URL or SQLite file (ENDURO_DATABASE_URL)")
    common.add_argument("--json", action="store_true", help="print the status JSON on stdout")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    common.add_argument("--log-format", choices=("text", "json"), default="text")
    common.add_argument("--log-level", default="WARNING")
    common.add_argument(
        "--db-outage-timeout",
        type=number(float, allow_zero=True),
        metavar="SECONDS",
        help="how long a database outage is waited out before giving up; a run then pauses "
        f"(exit 4, resumable) (ENDURO_DB_OUTAGE_TIMEOUT, default {DEFAULT_OUTAGE_SECONDS:g})",
    )

    knobs = argparse.ArgumentParser(add_help=False)
    knobs.add_argument("--model", help="model name (ENDURO_MODEL)")
    knobs.add_argument("--base-url", help="OpenAI-compatible endpoint (OPENAI_BASE_URL)")
    knobs.add_argument("--workspace", help="directory for thread workspaces (ENDURO_WORKSPACE)")
    for name, kind in LIMIT_FLAGS:
        knobs.add_argument("--" + name.replace("_", "-"), type=number(kind), dest=name)
    knobs.add_argument(
        "--allow-private-urls",
        action="store_true",
        default=None,
        help="let fetch_url reach private and loopback addresses",
    )
    knobs.add_argument(
        "--keep-checkpoints",
        type=number(int),
        default=DEFAULT_KEEP_CHECKPOINTS,
        help="retention window: checkpoints kept per thread",
    )
    webhooks_cli.add_run_flags(knobs)
    add_budget_flags(knobs)

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common, knobs], help="start a run for GOAL")
    run.add_argument("goal")
    run.add_argument("--thread-id", help="id for the new thread (default: generated)")
    resume = sub.add_parser("resume", parents=[common, knobs], help="continue a thread")
    resume.add_argument("thread_id")
    for name in ("status", "cancel", "report"):
        p = sub.add_parser(name, parents=[common], help=f"{name} a thread")
        p.add_argument("thread_id")
    sub.add_parser("list", parents=[common], help="list threads")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", parents=[common], help="create or upgrade every table")
    webhooks_cli.add_commands(sub, common)
    dashboard_cli.add_command(sub, common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        base_url=getattr(args, "base_url", None),
        model=getattr(args, "model", None),
        database_url=args.db,
        workspace=getattr(args, "workspace", None),
    )


def _outage(args: argparse.Namespace) -> OutagePolicy:
    """The outage policy of this command's database: flag, else env, else the default."""
    seconds = args.db_outage_timeout
    return OutagePolicy(timeout=outage_seconds_from_env() if seconds is None else seconds)


def _overrides(args: argparse.Namespace, settings: Settings) -> ContextOverrides:
    """Context fields the user set on this command line (limits not given carry over)."""
    out: dict[str, Any] = {
        name: getattr(args, name) for name, _ in LIMIT_FLAGS if getattr(args, name) is not None
    }
    if args.model:
        out["model"] = args.model
    if args.allow_private_urls:
        out["allow_private_urls"] = True
    if getattr(args, "workspace", None):
        out["workspace"] = settings.workspace
    out.update(budget_overrides(args))
    return ContextOverrides.from_mapping(out)


def _emit(args: argparse.Namespace, status: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(status, indent=None, default=str))


async def _status_of(backend: Backend, thread_id: str) -> dict[str, Any]:
    row = await threads.load_thread(backend, thread_id)
    if row is None:
        raise UnknownThread(
            f"unknown thread {thread_id!r}: `enduro list` shows the threads in "
            f"{redact(backend.url)}"
        )
    values, checkpoint_id = await checkpoint_values(backend, thread_id)
    return build_status(row, values, checkpoint_id, await load_spend(backend.db, thread_id))


async def _run_or_resume(args: argparse.Namespace) -> int:
    settings = _settings(args)
    settings.require_model_endpoint()
    hooks = webhooks_cli.config_from_args(args)
    progress = Progress(quiet=args.quiet)
    if args.command == "run":
        context = EnduroContext(model=settings.model, workspace=settings.workspace)
        context = context.with_overrides(_overrides(args, settings))
        # Before the database is touched: e.g. --max-usd on a model with no known price.
        check_budget_config(context)
    async with open_backend(settings.database_url, outage=_outage(args)) as backend:
        if args.command == "run":
            thread_id = await create_run(backend, args.goal, context, args.thread_id)
            overrides = ContextOverrides()
            progress.say(f"thread {thread_id}")
        else:
            thread_id = args.thread_id
            overrides = _overrides(args, settings)
        control = RunControl()
        task = asyncio.current_task()
        signals = 0

        def on_signal() -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                control.request_drain(StopReason.SIGNAL.value)
                progress.say("stopping at the next step boundary (signal again to stop now)")
            elif task is not None:
                task.cancel()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        webhooks = WebhookSession(backend.db, hooks)
        known: threads.ThreadRow | None = None
        try:
            with progress:
                known = await threads.get_thread(backend.db, thread_id)
                options = RunOptions(
                    overrides=overrides,
                    control=control,
                    model=openai_model_factory(settings),
                    on_update=progress.update,
                    keep_checkpoints=args.keep_checkpoints,
                    webhooks=webhooks,
                )
                outcome = await advance_with_backend(backend, thread_id, options)
            # Also for a thread that was complete already: deliver what it left pending.
            with contextlib.suppress(DatabaseUnreachable):
                await webhooks.attach(thread_id)
        except DatabaseUnreachable as exc:
            # Before the graph ran: resumable all the same.
            outcome = Outcome(thread_id, "paused", exc.stop_reason)
        except asyncio.CancelledError:
            progress.say(f"stopped; resume with: enduro resume {thread_id}")
            _emit(args, await _status_of(backend, thread_id))
            return 4
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await webhooks.close()
        status = await _final_status(backend, known, outcome)
    if outcome.status == "paused":
        progress.say(f"paused; resume with: enduro resume {thread_id}")
    elif outcome.status == "failed":
        progress.say(f"failed: {outcome.stop_reason}\nresume with: enduro resume {thread_id}")
    elif outcome.status == "budget_exhausted":
        progress.say(
            f"stopped by {outcome.stop_reason}; raise it and resume: "
            f"enduro resume {thread_id} --{(outcome.stop_reason or '').replace('_', '-')} N"
        )
    if not args.json and outcome.status != "paused":
        progress.say(status.get("report") or "")
    _emit(args, status)
    return outcome.exit_code


async def _final_status(
    backend: Backend, known: threads.ThreadRow | None, outcome: Outcome
) -> dict[str, Any]:
    """The thread's status JSON; when the database is unreachable, what this process knows
    (the outcome, the row as it was read at the start), so `--json` still answers."""
    try:
        return await _status_of(backend, outcome.thread_id)
    except DatabaseUnreachable as exc:
        print(f"enduro: the database is unreachable: {exc.detail}", file=sys.stderr)
        return offline_status(outcome.thread_id, known, outcome.status, outcome.stop_reason)


async def _query(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with open_backend(settings.database_url, create=False, outage=_outage(args)) as backend:
        if args.command == "list":
            await threads.adopt_orphans(backend)
            rows = await threads.list_threads(backend.db)
            items: list[dict[str, Any]] = []
            for row in rows:
                status, reason = row.effective_status()
                items.append(
                    {
                        "thread_id": row.thread_id,
                        "status": status,
                        "stop_reason": reason,
                        "goal": row.goal,
                        "resumable": status != "completed" and status != "running",
                    }
                )
            if args.json:
                print(json.dumps(items))
            else:
                for item in items:
                    reason = f" ({item['stop_reason']})" if item["stop_reason"] else ""
                    print(
                        f"{item['thread_id']}  {item['status']}{reason}  {item['goal'][:60]}",
                        file=sys.stderr,
                    )
            return 0
        result = await _status_of(backend, args.thread_id)
        if args.command == "cancel":
            await _cancel(backend, args.thread_id, result)
            result = await _status_of(backend, args.thread_id)
        elif args.command == "report":
            if not args.json:
                print(result.get("report") or "(no report yet: the thread is still running)")
        elif not args.json:
            _print_status(result)
        _emit(args, result)
        return 0


async def _cancel(backend: Backend, thread_id: str, status: dict[str, Any]) -> None:
    if status["status"] == "running":
        # The running process's guard sees this before its next model call and finishes
        # gracefully with status `cancelled`.
        await threads.request_cancel(backend.db, thread_id)
        print(f"cancel requested for {thread_id}; it stops at its next step", file=sys.stderr)
    elif status["status"] in ("completed", "cancelled"):
        print(f"{thread_id} is already {status['status']}", file=sys.stderr)
    else:
        await threads.release(backend.db, thread_id, "cancelled", StopReason.CANCEL.value)
        await webhooks_cli.thread_cancelled(backend, thread_id)
        print(f"{thread_id} cancelled", file=sys.stderr)


def _print_status(status: dict[str, Any]) -> None:
    p, u = status["progress"], status["usage"]
    reason = f" ({status['stop_reason']})" if status["stop_reason"] else ""
    print(f"{status['thread_id']}: {status['status']}{reason}", file=sys.stderr)
    print(
        f"  steps {p['steps_done']}/{p['steps_total']}, {u['llm_calls']} model calls, "
        f"{u['tool_calls']} tool calls, {u['active_seconds']:.0f}s active",
        file=sys.stderr,
    )
    for step in status["plan"]:
        print(f"  [{step['status']}] {step['id']} {step['title']}", file=sys.stderr)
    if status["resumable"]:
        print(f"  resumable: enduro resume {status['thread_id']}", file=sys.stderr)


async def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    async with open_backend(settings.database_url, outage=_outage(args)) as backend:
        version = await backend.migrate()
    print(
        f"database {redact(settings.database_url)} is at schema version {version}", file=sys.stderr
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_format, args.log_level)
    try:
        if args.command in ("run", "resume"):
            code = asyncio.run(_run_or_resume(args))
        elif args.command == "db":
            code = asyncio.run(_migrate(args))
        elif args.command == "webhooks":
            code = webhooks_cli.main(args)
        elif args.command == "dashboard":
            code = dashboard_cli.main(args)
        else:
            code = asyncio.run(_query(args))
    except ConfigError as exc:
        print(f"enduro: error: {exc}", file=sys.stderr)
        code = 2
    except DatabaseUnreachable as exc:
        print(f"enduro: error: {exc.stop_reason}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 4
    return code


if __name__ == "__main__":
    sys.exit(main())
