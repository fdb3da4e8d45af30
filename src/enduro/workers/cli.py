"""The worker parts of the command line: `enduro worker`, `run/resume --detach`,
`enduro watch`, `enduro workers`. cli.py calls in.

Importing this module stays light (argparse only): `enduro status` and the other read-only
commands build the whole parser, and must not load LangGraph (tests/unit/test_cli_imports.py).
The commands themselves live in `enduro.workers.commands`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from enduro.cliargs import number
from enduro.settings import Settings

COMMANDS = ("worker", "watch", "workers")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    worker = sub.add_parser(
        "worker", parents=[common], help="advance queued threads (PostgreSQL; procrastinate)"
    )
    worker.add_argument(
        "--concurrency", type=number(int), default=10, help="threads at once (default 10)"
    )
    worker.add_argument(
        "--slice-minutes",
        type=number(float),
        default=10.0,
        help="a job advances its thread this long, then queues it again (default 10)",
    )
    worker.add_argument(
        "--slice-steps", type=number(int), help="or this many super-steps, whichever is first"
    )
    worker.add_argument(
        "--grace-seconds",
        type=number(float),
        default=60.0,
        help="after SIGTERM, how long threads get to reach a step boundary (default 60)",
    )
    watch = sub.add_parser("watch", parents=[common], help="follow a thread run by any worker")
    watch.add_argument("thread_id")
    watch.add_argument("--poll-seconds", type=number(float), default=0.5, help=argparse.SUPPRESS)
    sub.add_parser("workers", parents=[common], help="live workers and the threads they hold")


def add_detach_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detach",
        action="store_true",
        help="queue the thread for `enduro worker` and return at once (PostgreSQL)",
    )


def main(args: argparse.Namespace, settings: Settings) -> int:
    """`enduro worker | watch | workers`: the exit code."""
    from enduro.workers import commands

    if args.command == "worker":
        return commands.run_worker(args, settings)
    if args.command == "watch":
        return asyncio.run(commands.watch(args, settings))
    return asyncio.run(commands.list_workers(args, settings))


async def detach(
    args: argparse.Namespace,
    settings: Settings,
    hooks: Any,
    context: Any,
    overrides: Any,
) -> str:
    """`run --detach` (context given) or `resume --detach`: queue; returns the thread id."""
    from enduro.workers import commands

    return await commands.detach(args, settings, hooks, context, overrides)
