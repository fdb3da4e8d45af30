"""The worker commands (see `enduro.workers.cli`, which imports this module on use)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from enduro import threads
from enduro.budgets.report import load_spend
from enduro.context import ContextOverrides, EnduroContext
from enduro.errors import UnknownThread
from enduro.names import parse_thread_ref
from enduro.nodes.llm import openai_model_factory
from enduro.progress import Progress
from enduro.runner import EXIT_CODES
from enduro.settings import Settings
from enduro.status import build_status, checkpoint_values
from enduro.storage import leases
from enduro.storage.backend import Backend, open_backend
from enduro.webhooks.config import WebhookConfig
from enduro.workers import queue
from enduro.workers.runtime import EnduroWorker, WorkerOptions
from enduro.workers.submit import require_postgres, submit_existing, submit_new

_TERMINAL = ("completed", "budget_exhausted", "cancelled", "failed")


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """`enduro worker`: runs until signalled; 0 after a clean drain."""
    require_postgres(settings.database_url, "`enduro worker`")
    settings.require_model_endpoint()
    options = WorkerOptions(
        url=settings.database_url,
        concurrency=args.concurrency,
        slice_seconds=args.slice_minutes * 60,
        slice_steps=args.slice_steps,
        grace_seconds=args.grace_seconds,
    )
    return asyncio.run(EnduroWorker(options, openai_model_factory(settings)).run())


async def detach(
    args: argparse.Namespace,
    settings: Settings,
    hooks: WebhookConfig,
    context: EnduroContext | None,
    overrides: ContextOverrides,
) -> str:
    """`run --detach` (context given) or `resume --detach`: queue; returns the thread id.
    `--thread-id` / THREAD is an id or a name, as for every command (`enduro.names`)."""
    require_postgres(settings.database_url, "--detach")
    ref = parse_thread_ref(args.thread_id) if args.thread_id else None
    async with open_backend(settings.database_url) as backend:
        if context is not None:
            thread_id = await submit_new(
                backend,
                args.goal,
                context,
                thread_id=ref.thread_id if ref else None,
                name=ref.name if ref else None,
                hooks=hooks,
            )
        else:
            assert ref is not None
            thread_id = ref.thread_id
            await submit_existing(backend, thread_id, overrides, hooks=hooks)
        print(f"queued {thread_id}; follow it with: enduro watch {thread_id}", file=sys.stderr)
        return thread_id


async def status_of(backend: Backend, thread_id: str) -> dict[str, Any]:
    row = await threads.get_thread(backend.db, thread_id)
    if row is None:
        raise UnknownThread(f"unknown thread {thread_id!r}")
    values, checkpoint_id = await checkpoint_values(backend, thread_id)

    return build_status(row, values, checkpoint_id, await load_spend(backend.db, thread_id))


async def watch(args: argparse.Namespace, settings: Settings) -> int:
    """Follow the thread's checkpoints until it stops; exit with its exit code."""
    progress = Progress(quiet=args.quiet)
    thread_id = parse_thread_ref(args.thread_id).thread_id
    async with open_backend(settings.database_url, create=False, migrate_schema=False) as backend:
        seen: str | None = None
        with progress:
            while True:
                status = await status_of(backend, thread_id)
                if status.get("checkpoint_id") != seen:
                    seen = status.get("checkpoint_id")
                    _show(progress, status)
                if await _stopped(backend, status):
                    break
                await asyncio.sleep(args.poll_seconds)
        progress.say(f"{args.thread_id}: {status['status']}")
        if args.json:
            print(json.dumps(status, default=str))
        return EXIT_CODES.get(status["status"], 1)


def _show(progress: Progress, status: dict[str, Any]) -> None:
    progress.update(
        {
            "watch": {
                "plan": status["plan"],
                "current": status.get("current_step"),
            }
        }
    )
    progress.usage = {k: float(v or 0) for k, v in status["usage"].items()}


async def _stopped(backend: Backend, status: dict[str, Any]) -> bool:
    """Terminal, or paused with no job queued or running for it (a slice or a deploy
    re-queues it, and it is briefly `paused` in between)."""
    if status["status"] in _TERMINAL:
        return True
    if status["status"] != "paused":
        return False
    if backend.db.dialect != "postgres":
        return True
    return not await queue.pending_jobs(backend.db, status["thread_id"])


async def list_workers(args: argparse.Namespace, settings: Settings) -> int:
    async with open_backend(settings.database_url, create=False, migrate_schema=False) as backend:
        live = await queue.live_workers(backend.db, leases.STALE_SECONDS)
    if args.json:
        print(json.dumps([w.to_dict() for w in live]))
        return 0
    if not live:
        print("no live workers", file=sys.stderr)
    now = time.time()
    for w in live:
        print(
            f"worker {w.worker_id}  {w.host}:{w.pid}  heartbeat {now - w.last_heartbeat:.0f}s ago"
            f"  {len(w.threads)}/{w.concurrency} threads  {' '.join(w.threads)}",
            file=sys.stderr,
        )
    return 0
