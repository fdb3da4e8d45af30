"""A real webhook receiver on 127.0.0.1 for the test suite and the bench (stdlib only).

Each request is recorded with its headers and body, then answered according to `script`:
a function of the request number (0-based, over all requests) and the request, returning an
`Answer`.
Signatures are checked with the standardwebhooks library when a secret is given; a bad one
gets 401. `hang` answers nothing until the receiver stops. `stop()` then `start()` again
keeps the port, so a test can take a receiver "down" and bring it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


@dataclass
class Hit:
    headers: dict[str, str]
    body: bytes
    at: float
    status: int | None = None
    verified: bool | None = None

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def seq(self) -> int:
        return int(self.event["data"]["seq"])

    @property
    def thread_id(self) -> str:
        return str(self.event["data"]["thread_id"])


Script = Callable[[int, Hit], Answer]


def always(status: int = 200, **headers: str) -> Script:
    return lambda _n, _hit: Answer(status, dict(headers))


class Receiver:
    def __init__(
        self,
        script: Script | None = None,
        *,
        secret: str | None = None,
        port: int = 0,
    ) -> None:
        self.script = script or always(200)
        self.secret = secret
        self.port = port
        self.hits: list[Hit] = []
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hit = Hit({k.lower(): v for k, v in self.headers.items()}, body, time.time())
                with owner._lock:
                    number = len(owner.hits)
                    owner.hits.append(hit)
                    owner._lock.notify_all()
                answer = owner.script(number, hit)
                if owner.secret is not None:
                    try:
                        Webhook(owner.secret).verify(body, hit.headers)
                        hit.verified = True
                    except Exception:
                        hit.verified = False
                        answer = Answer(401)
                if answer.hang:
                    owner._stopping.wait()
                    self.close_connection = True
                    return
                hit.status = answer.status
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", "0")
                self.end_headers()

        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, predicate: Callable[[list[Hit]], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self.hits):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
            return True

    async def until(self, predicate: Callable[[list[Hit]], bool], seconds: float = 15.0) -> bool:
        """`wait_for` for async tests: polls without blocking the event loop."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if predicate(self.hits):
                    return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)

    def accepted(self) -> list[Hit]:
        """Requests answered 2xx, in arrival order."""
        with self._lock:
            return [h for h in self.hits if h.status is not None and 200 <= h.status < 300]

    def types(self) -> list[str]:
        return [h.event["type"] for h in self.accepted()]


def reserve_port() -> int:
    """A port nothing listens on (yet): requests to it are refused."""
    return Receiver.free_port()


@contextlib.contextmanager
def hanging_receiver() -> Any:
    with Receiver(lambda _n, _hit: Answer(hang=True)) as receiver:
        yield receiver
