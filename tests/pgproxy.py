"""A TCP proxy on loopback in front of PostgreSQL that can take the database away.

`cut()` aborts every proxied connection (both sides) and stops listening, so new connection
attempts are refused, as when a database server restarts or a failover drops every client;
`restore()` listens again on the same port. `outage(seconds)` does both, the restore from a
timer, and returns at once. The proxy's asyncio loop runs in a daemon thread, so tests can
drive subprocesses while it works.

Usage::

    with PgProxy.for_url(pg_url) as proxy:
        url = proxy.url(pg_url)            # the same database, through the proxy
        ...
        proxy.outage(3.0)                  # gone for 3 s
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PgProxy"]


class PgProxy:
    """Proxy 127.0.0.1:<port> to `upstream_host:upstream_port`.

    Args:
        upstream_host: where PostgreSQL listens.
        upstream_port: its port.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.accepted = 0
        """Connections accepted since start (across outages)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.WriteTransport] = set()
        self._timers: list[threading.Timer] = []

    @classmethod
    def for_url(cls, url: str) -> PgProxy:
        """A proxy in front of the server of `url` (a `postgresql://` URL)."""
        parts = urlsplit(url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's (user, database and query
        such as `options=-csearch_path=…` kept)."""
        parts = urlsplit(url)
        auth = parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> PgProxy:
        """Start the loop thread and listen on a free loopback port."""
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Cancel pending restores, drop everything and stop the loop thread."""
        for timer in self._timers:
            timer.cancel()
        with contextlib.suppress(RuntimeError):
            self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> PgProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Proxied connections open right now."""
        return len(self._pipes) // 2

    @property
    def listening(self) -> bool:
        """False between `cut()` and `restore()`."""
        return self._server is not None

    def cut(self) -> None:
        """Abort every proxied connection and refuse new ones until `restore()`."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._call(self._listen())

    def outage(self, seconds: float) -> None:
        """`cut()` now and `restore()` after `seconds`, without blocking the caller."""
        self.cut()
        timer = threading.Timer(seconds, self.restore)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # -- inside the loop ------------------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for transport in list(self._pipes):
            transport.abort()
        self._pipes.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        client = writer.transport
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client.abort()
            return
        if self._server is None:  # cut while connecting upstream
            client.abort()
            up_writer.transport.abort()
            return
        self._pipes.update((client, up_writer.transport))
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )
        self._pipes.discard(client)
        self._pipes.discard(up_writer.transport)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
