"""`enduro dashboard`: serve the dashboard with uvicorn.

The socket is bound here, before uvicorn starts, so that a port in use is a message and
exit 2 rather than uvicorn's log line, and `--port 0` picks a free port that is then
printed. FastAPI is imported only by this command, so other commands start no slower.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import sys
from typing import Any

from enduro._redact import redact
from enduro.cliargs import number
from enduro.errors import ConfigError
from enduro.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8780
GENERATE = "\0generate"


def add_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `enduro dashboard` (bind address, port, token) to the CLI's subcommands."""
    p = sub.add_parser(
        "dashboard", parents=[common], help="serve the web dashboard and its JSON API"
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="bind address (default 127.0.0.1)")
    p.add_argument(
        "--port", type=number(int, allow_zero=True), default=DEFAULT_PORT, help="TCP port; 0: any"
    )
    p.add_argument(
        "--token",
        nargs="?",
        const=GENERATE,
        help="require this token (Bearer header or login form); alone: generate one and "
        "print it. Required when --host is not loopback (ENDURO_DASHBOARD_TOKEN)",
    )


def _token(args: argparse.Namespace) -> str | None:
    if args.token == GENERATE:
        token = secrets.token_urlsafe(24)
        # Shown once to the person who started the server; never logged or stored.
        print(f"dashboard token: {token}", file=sys.stderr)
        return token
    given: str | None = args.token or os.environ.get("ENDURO_DASHBOARD_TOKEN") or None
    return given


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or --host"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


def main(args: argparse.Namespace) -> int:
    """Serve until interrupted; 0 on a clean stop, 2 on a configuration error."""
    from enduro.dashboard.security import Access

    settings = Settings.from_env(database_url=args.db)
    access = Access.check(args.host, _token(args))
    sock = _bind(args.host, args.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    banner = (
        f"enduro dashboard on http://{shown}:{port}/ (database {redact(settings.database_url)}"
        f"{', token required' if access.token else ''})"
    )
    try:
        asyncio.run(_serve(settings.database_url, access, sock, args.log_level.lower(), banner))
    finally:
        sock.close()
    return 0


async def _serve(
    database_url: str, access: Any, sock: socket.socket, log_level: str, banner: str
) -> None:
    import uvicorn

    from enduro.client import Client
    from enduro.dashboard.app import create_app
    from enduro.threads import adopt_orphans

    # Opened (and migrated) before serving: an unreachable database is exit 2 with a message.
    async with Client(database_url) as client:
        # Threads started from `langgraph dev` get a row, as `enduro list` does.
        await adopt_orphans(client.backend)
        # Printed once the database answers (tests and scripts wait for this line).
        print(banner, file=sys.stderr, flush=True)
        config = uvicorn.Config(
            create_app(client, access),
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=3,
        )
        await uvicorn.Server(config).serve(sockets=[sock])
