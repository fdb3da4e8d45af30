"""The webhook parts of the command line.

Flags of `run` / `resume`, and `enduro webhooks list | retry | deliver | listen | secret`. cli.py
only calls into here.

Module-level imports stay light (no HTTP client, no LangChain): `enduro webhooks list`
is one of the fast read-only commands; the sender, the session and the receiver are
imported by the commands that use them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from enduro.cliargs import number
from enduro.errors import ConfigError
from enduro.settings import Settings
from enduro.webhooks.config import WebhookConfig, endpoint_id, new_secret, secret_bytes

if TYPE_CHECKING:
    from enduro.client import WebhookBacklog
    from enduro.storage import Backend

_seconds_arg = number(float)


def _add_delivery_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--webhook-secret",
        metavar="whsec_…",
        help="signing secret (ENDURO_WEBHOOK_SECRET; prefer the variable: flags show in `ps`)",
    )
    parser.add_argument(
        "--webhook-timeout",
        type=_seconds_arg,
        metavar="SECONDS",
        help="hard limit on one delivery attempt (default 10)",
    )


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """Flags of `run` and `resume`."""
    parser.add_argument(
        "--webhook-url",
        action="append",
        metavar="URL",
        help="POST progress events to URL (repeatable; ENDURO_WEBHOOK_URL, comma-separated)",
    )
    _add_delivery_flags(parser)
    parser.add_argument(
        "--webhook-heartbeat",
        type=_seconds_arg,
        metavar="SECONDS",
        help="run.heartbeat after this much silence while a step runs (default 30)",
    )


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    hooks = sub.add_parser("webhooks", help="the webhook outbox: list, retry, deliver, listen")
    actions = hooks.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")
    listing = actions.add_parser(
        "list", parents=[common], help="endpoints and undelivered (pending, dead) events"
    )
    listing.add_argument("thread_id", nargs="?")
    listing.add_argument("--all", action="store_true", help="delivered events too")
    retry = actions.add_parser(
        "retry", parents=[common], help="re-send dead events, re-enable disabled endpoints"
    )
    retry.add_argument("thread_id", nargs="?")
    retry.add_argument("--endpoint", help="only this endpoint (URL or ep_… id)")
    retry.add_argument("--seq", type=int, help="only this event")
    deliver = actions.add_parser("deliver", parents=[common], help="send what is pending now")
    deliver.add_argument("thread_id", nargs="*")
    deliver.add_argument(
        "--follow",
        action="store_true",
        help="keep delivering new events of every thread until SIGTERM / Ctrl-C (no workers)",
    )
    deliver.add_argument(
        "--wait", type=_seconds_arg, metavar="SECONDS", help="keep retrying for up to SECONDS"
    )
    for parser in (retry, deliver):
        _add_delivery_flags(parser)
    listen = actions.add_parser(
        "listen", parents=[common], help="a development receiver that verifies and prints"
    )
    listen.add_argument("--port", type=int, required=True)
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--secret", help="whsec_… to verify with (ENDURO_WEBHOOK_SECRET)")
    listen.add_argument(
        "--no-verify", action="store_true", help="accept unsigned deliveries (no secret)"
    )
    actions.add_parser("secret", parents=[common], help="print a new whsec_… signing secret")


def config_from_args(args: argparse.Namespace) -> WebhookConfig:
    """Validated webhook configuration (flags over env).

    A malformed URL or secret is a ConfigError (exit 2) before anything is touched.
    """
    settings = Settings.from_env(
        webhook_urls=tuple(getattr(args, "webhook_url", None) or ()),
        webhook_secret=getattr(args, "webhook_secret", None),
    )
    return WebhookConfig.from_settings(
        settings,
        heartbeat_seconds=getattr(args, "webhook_heartbeat", None),
        timeout_seconds=getattr(args, "webhook_timeout", None),
    )


def main(args: argparse.Namespace) -> int:
    """`webhooks secret` and `webhooks listen` (no database, no event loop of ours)."""
    if args.webhooks_command == "secret":
        secret = new_secret()
        # --json promises one JSON object on stdout for every command, this one included.
        print(json.dumps({"secret": secret}) if getattr(args, "json", False) else secret)
        return 0
    return _listen(args)


async def run(args: argparse.Namespace) -> tuple[int, Any]:
    """`webhooks list | retry | deliver`: the exit code and what `--json` prints."""
    from enduro.client import Client

    config = config_from_args(args) if args.webhooks_command != "list" else WebhookConfig()
    settings = Settings.from_env(database_url=args.db)
    async with Client(settings.database_url, create_database=False) as client:
        if args.webhooks_command == "list":
            backlog = await client.webhooks(args.thread_id, include_delivered=args.all)
            if not args.json:
                _print_backlog(backlog, args.thread_id)
            return 0, backlog.to_json()
        if args.thread_id:
            # Names as well as ids (enduro.names).
            if isinstance(args.thread_id, list):
                args.thread_id = [await client.resolve(t) for t in args.thread_id]
            else:
                args.thread_id = await client.resolve(args.thread_id)
        return await _retry_or_deliver(client.backend, config, args)


async def _retry_or_deliver(
    backend: Backend, config: WebhookConfig, args: argparse.Namespace
) -> tuple[int, Any]:
    from enduro.webhooks import outbox

    thread_ids: list[str] | None
    if args.webhooks_command == "retry":
        ep = args.endpoint
        if ep and not ep.startswith("ep_"):
            ep = endpoint_id(ep)
        revived, enabled = await outbox.revive(
            backend.db, thread_id=args.thread_id, endpoint_id=ep, seq=args.seq
        )
        print(
            f"{revived} dead deliveries back in the queue, {enabled} endpoints re-enabled",
            file=sys.stderr,
        )
        thread_ids = [args.thread_id] if args.thread_id else None
    else:
        thread_ids = list(args.thread_id) or None
    follow = bool(getattr(args, "follow", False))
    return await _deliver(backend, config, thread_ids, getattr(args, "wait", None), follow)


async def _follow(sender: Any) -> None:
    """Deliver continuously (the sender's loop) until the first SIGINT / SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("delivering pending events as they come; Ctrl-C to stop", file=sys.stderr)
    try:
        sender.start()
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _deliver(
    backend: Backend,
    config: WebhookConfig,
    thread_ids: list[str] | None,
    wait: float | None,
    follow: bool = False,
) -> tuple[int, Any]:
    from enduro.webhooks import outbox
    from enduro.webhooks.sender import Sender

    sender = Sender(backend.db, config, thread_ids=thread_ids)
    try:
        if follow:
            await _follow(sender)
        elif wait:
            await sender.flush(wait)
        else:
            await sender.deliver_once()
    finally:
        await sender.stop()
    left = await outbox.deliveries(backend.db, states=("pending",))
    left = [r for r in left if thread_ids is None or r["thread_id"] in thread_ids]
    summary = {
        "delivered": sender.stats["delivered"],
        "failed_attempts": sender.stats["failed"],
        "dead": sender.stats["dead"],
        "pending": len(left),
    }
    print(
        f"delivered {summary['delivered']}, failed attempts {summary['failed_attempts']}, "
        f"dead {summary['dead']}, still pending {summary['pending']}"
        + (" (`enduro webhooks list` shows why)" if left else ""),
        file=sys.stderr,
    )
    # --follow ends on a signal, its normal end: what is left goes out next time.
    return (1 if left and not follow else 0), summary


def _print_backlog(backlog: WebhookBacklog, thread_id: str | None) -> None:
    now = time.time()
    for e in backlog.endpoints:
        signed = f"signed {e['secret_fingerprint']}" if e["secret_fingerprint"] else "unsigned"
        state = e["state"] + (f" ({e['disabled_reason']})" if e["disabled_reason"] else "")
        print(
            f"{e['thread_id']}  {e['endpoint_id']}  {e['url']}  {state}  {signed}",
            file=sys.stderr,
        )
        for r in backlog.deliveries:
            if (r["thread_id"], r["endpoint_id"]) != (e["thread_id"], e["endpoint_id"]):
                continue
            line = f"    seq {r['seq']:>5} {r['type']:<22} {r['state']:<9} attempts {r['attempts']}"
            if r["state"] == "pending" and r["attempts"]:
                line += f"  next in {max(float(r['next_attempt_at']) - now, 0):.0f}s"
            if r["last_error"]:
                line += f"  last: {r['last_error']}"
            print(line, file=sys.stderr)
    if not backlog.endpoints:
        print(
            "no webhook endpoints" + (f" for {thread_id}" if thread_id else ""),
            file=sys.stderr,
        )


def _listen(args: argparse.Namespace) -> int:
    from enduro.webhooks.listen import ProgressBoard, make_server

    secret = args.secret or os.environ.get("ENDURO_WEBHOOK_SECRET", "").strip() or None
    if secret is None and not args.no_verify:
        raise ConfigError(
            "listen needs the signing secret to verify deliveries: --secret whsec_… or "
            "ENDURO_WEBHOOK_SECRET (the one given to `enduro run`), or --no-verify for "
            "unsigned ones"
        )
    if secret is not None:
        secret_bytes(secret)
    board = ProgressBoard(sys.stdout, as_json=args.json)
    try:
        server = make_server(args.host, args.port, None if args.no_verify else secret, board)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    mode = "unsigned accepted" if args.no_verify else "verifying signatures"
    print(
        f"listening on http://{args.host}:{server.server_address[1]}/ ({mode}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        board.close()
    return 0
