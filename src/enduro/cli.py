"""The `enduro` command line: a thin layer over `enduro.Client`.

Human output goes to stderr. With `--json`, every outcome prints exactly one JSON value on
stdout: the thread's status object when a thread exists (a list for `list`), otherwise
`{"error": {"code", "message"}}` with the message also written to stderr. Exit codes:
0 completed, 1 failed, 2 usage or configuration error, 3 budget limit, 4 paused
(resumable), 5 cancelled, 6 waiting for a person.

Invariant: the read-only commands (`status`, `list`, `report`, `cancel`, `webhooks
list`) import neither LangGraph's graph modules nor langchain-openai; `run` and `resume`
import them from `enduro._cli_run` when they start (tests/unit/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from enduro import _cli_webhooks as webhooks_cli
from enduro._redact import redact
from enduro._signals import SignalGate
from enduro.budgets.cli_flags import add_budget_flags, budget_overrides
from enduro.checkpointing.retention import DEFAULT_KEEP_CHECKPOINTS
from enduro.cliargs import number
from enduro.client import Client, ThreadStatus
from enduro.context import ContextOverrides, EnduroContext
from enduro.dashboard import cli as dashboard_cli
from enduro.errors import ConfigError, DatabaseUnreachable, EnduroError, ErrorCode, error_json
from enduro.hitl import cli as hitl_cli
from enduro.log import setup_logging
from enduro.settings import Settings
from enduro.storage.outage import (
    DEFAULT_OUTAGE_SECONDS,
    OutagePolicy,
    outage_seconds_from_env,
)
from enduro.workers import cli as workers_cli


class UsageError(ConfigError):
    """argparse refused the command line (exit 2).

    Args:
        message: argparse's message, prefixed with the (sub)command.
        usage: the usage line of the (sub)command that refused it.
    """

    code = ErrorCode.USAGE

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse, raising `UsageError` instead of exiting at once.

    `--json` then still answers with one JSON object (subparsers inherit the class).
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", self.format_usage())


def build_parser() -> argparse.ArgumentParser:
    """The `enduro` argument parser (every subcommand and flag)."""
    parser = _Parser(prog="enduro", description=__doc__.split("\n\n")[0])
    common = _Parser(add_help=False)
    common.add_argument("--db", help="postgresql://… URL or SQLite file (ENDURO_DATABASE_URL)")
    common.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
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

    knobs = _Parser(add_help=False)
    knobs.add_argument("--model", help="model name (ENDURO_MODEL)")
    knobs.add_argument("--base-url", help="OpenAI-compatible endpoint (OPENAI_BASE_URL)")
    knobs.add_argument("--workspace", help="directory for thread workspaces (ENDURO_WORKSPACE)")
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
        metavar="N",
        help="retention window: checkpoints kept per thread",
    )
    webhooks_cli.add_run_flags(knobs)
    add_budget_flags(knobs)
    hitl_cli.add_run_flags(knobs)

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common, knobs], help="start a run for GOAL")
    run.add_argument("goal")
    run.add_argument(
        "--thread-id",
        metavar="ID_OR_NAME",
        help="a UUID, or a name (e.g. nightly-report-7) that maps to a stable UUID; every "
        "command then accepts the name (default: a new UUID)",
    )
    resume = sub.add_parser("resume", parents=[common, knobs], help="continue a thread")
    resume.add_argument("thread_id", metavar="THREAD", help="thread id or name")
    for submitting in (run, resume):
        workers_cli.add_detach_flag(submitting)
    for name in ("status", "cancel", "report"):
        p = sub.add_parser(name, parents=[common], help=f"{name} a thread")
        p.add_argument("thread_id", metavar="THREAD", help="thread id or name")
    hitl_cli.add_commands(sub, [common, knobs])
    sub.add_parser("list", parents=[common], help="list threads")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("migrate", parents=[common], help="create or upgrade every table")
    webhooks_cli.add_commands(sub, common)
    dashboard_cli.add_command(sub, common)
    workers_cli.add_commands(sub, common)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        base_url=getattr(args, "base_url", None),
        model=getattr(args, "model", None),
        database_url=args.db,
        workspace=getattr(args, "workspace", None),
    )


def outage_policy(args: argparse.Namespace) -> OutagePolicy:
    """The outage policy of this command's database: flag, else env, else the default."""
    seconds = args.db_outage_timeout
    return OutagePolicy(timeout=outage_seconds_from_env() if seconds is None else seconds)


def _client(args: argparse.Namespace, *, create_database: bool = True) -> Client:
    return Client(
        _settings(args).database_url, create_database=create_database, outage=outage_policy(args)
    )


def _overrides(args: argparse.Namespace, settings: Settings) -> ContextOverrides:
    """Context fields the user set on this command line (limits not given carry over)."""
    out: dict[str, Any] = {}
    if args.model:
        out["model"] = args.model
    if args.allow_private_urls:
        out["allow_private_urls"] = True
    if getattr(args, "workspace", None):
        out["workspace"] = settings.workspace
    out.update(budget_overrides(args))
    out.update(hitl_cli.run_overrides(args))
    return ContextOverrides.from_mapping(out)


def _print_json(value: Any) -> None:
    print(json.dumps(value, default=str), flush=True)


async def _query(args: argparse.Namespace) -> tuple[int, Any]:
    """`status`, `list`, `report`, `cancel`: the result and what `--json` prints."""
    async with _client(args, create_database=False) as client:
        if args.command == "list":
            items = await client.list()
            for item in items if not args.json else ():
                reason = f" ({item.stop_reason})" if item.stop_reason else ""
                print(f"{item.thread_id}  {item.status}{reason}  {item.goal[:60]}", file=sys.stderr)
            return 0, [item.to_json() for item in items]
        if args.command == "cancel":
            result = await client.cancel(args.thread_id)
            _say_cancel(result.action, result.status)
            return 0, result.status.to_json()
        status = await client.status(args.thread_id)
        if args.command == "report" and not args.json:
            print(status.report or "(no report yet: the thread is still running)")
        elif args.command == "status" and not args.json:
            _print_status(status)
        return 0, status.to_json()


def _say_cancel(action: str, status: ThreadStatus) -> None:
    tid = status.thread_id
    if action == "requested":
        # The running process's guard sees this before its next model call and finishes
        # gracefully with status `cancelled`.
        print(f"cancel requested for {tid}; it stops at its next step", file=sys.stderr)
    elif action == "already_finished":
        print(f"{tid} is already {status.status}", file=sys.stderr)
    else:
        print(f"{tid} cancelled", file=sys.stderr)


def _print_status(status: ThreadStatus) -> None:
    data = status.to_json()
    p, u = data["progress"], data["usage"]
    reason = f" ({status.stop_reason})" if status.stop_reason else ""
    print(f"{status.thread_id}: {status.status}{reason}", file=sys.stderr)
    print(
        f"  steps {p['steps_done']}/{p['steps_total']}, {u['llm_calls']} model calls, "
        f"{u['tool_calls']} tool calls, {u['active_seconds']:.0f}s active",
        file=sys.stderr,
    )
    for step in data["plan"]:
        print(f"  [{step['status']}] {step['id']} {step['title']}", file=sys.stderr)
    if status.resumable:
        print(f"  resumable: enduro resume {status.thread_id}", file=sys.stderr)
    if data.get("interrupts"):
        pending = hitl_cli.pending_from_json(data["interrupts"])
        print(hitl_cli.waiting_help(status.thread_id, pending), file=sys.stderr)


async def _migrate(args: argparse.Namespace) -> tuple[int, Any]:
    url = _settings(args).database_url
    async with _client(args) as client:
        version = await client.backend.migrate()
    print(f"database {redact(url)} is at schema version {version}", file=sys.stderr)
    return 0, {"database": redact(url), "schema_version": version}


async def _detach(args: argparse.Namespace) -> tuple[int, Any]:
    """`run --detach` / `resume --detach`: queue for the workers, print the status."""
    settings = _settings(args)
    settings.require_model_endpoint()
    overrides = _overrides(args, settings)
    context = None
    if args.command == "run":
        context = EnduroContext(model=settings.model, workspace=settings.workspace)
        context = context.with_overrides(overrides)
    thread_id = await workers_cli.detach(
        args, settings, webhooks_cli.config_from_args(args), context, overrides
    )
    async with _client(args) as client:
        return 0, (await client.status(thread_id)).to_json()


async def _dispatch(args: argparse.Namespace, gate: SignalGate) -> tuple[int, Any]:
    """Run the command; returns its exit code and the value `--json` prints (or None)."""
    gate.on_signal(None)  # a read-only command just stops
    try:
        if args.command in ("run", "resume") and args.detach:
            return await _detach(args)
        if args.command in ("run", "resume", *hitl_cli.ANSWER_COMMANDS):
            from enduro._cli_run import run_or_resume

            settings = _settings(args)
            overrides = _overrides(args, settings)
            code, status = await run_or_resume(args, settings, overrides, outage_policy(args), gate)
            return code, status.to_json() if status is not None else None
        if args.command == "db":
            return await _migrate(args)
        if args.command == "webhooks":
            return await webhooks_cli.run(args)
        return await _query(args)
    finally:
        gate.leave_loop()


def _fail(args_json: bool, code: ErrorCode | str, message: str) -> None:
    print(f"enduro: error: {message}", file=sys.stderr)
    if args_json:
        _print_json(error_json(code, message))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `enduro` command; returns its exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    gate = SignalGate()
    gate.install()
    try:
        return _main(argv, wants_json, gate)
    finally:
        gate.finish()
        gate.uninstall()


def _main(argv: list[str], wants_json: bool, gate: SignalGate) -> int:
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.log_format, args.log_level)
        if args.command == "webhooks" and args.webhooks_command in ("secret", "listen"):
            return webhooks_cli.main(args)  # not async; they own their output
        if args.command == "dashboard":
            return dashboard_cli.main(args)  # a server: runs until interrupted
        if args.command in workers_cli.COMMANDS:
            return workers_cli.main(args, _settings(args))  # own loops and signals
        code, output = asyncio.run(_dispatch(args, gate))
    except UsageError as exc:
        # argparse's convention (usage line, message, SystemExit 2), plus the JSON.
        sys.stderr.write(exc.usage)
        _fail(wants_json, exc.code, str(exc))
        raise SystemExit(2) from None
    except DatabaseUnreachable as exc:
        # A read command: nothing to pause, the command failed (a run pauses instead).
        _fail(wants_json, exc.code, exc.stop_reason)
        return 1
    except EnduroError as exc:
        _fail(wants_json, exc.code, str(exc))
        return exc.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        _fail(wants_json, ErrorCode.INTERRUPTED, "interrupted by a signal before it finished")
        return 4
    except Exception as exc:
        # Not anticipated: still a message and an exit code, never a traceback.
        _fail(wants_json, ErrorCode.INTERNAL, redact(f"{type(exc).__name__}: {exc}"))
        return 1
    if wants_json and output is not None:
        _print_json(output)
    return code


if __name__ == "__main__":
    sys.exit(main())
