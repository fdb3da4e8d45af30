"""`enduro webhooks listen`: a small receiver for development, and the example to copy.

What a receiver must do, in order:
1. verify the signature over the raw body (standardwebhooks' `Webhook(secret).verify`),
   and answer 401 when it fails, before looking at the payload;
2. answer 2xx quickly (do the work after answering in a real service);
3. deduplicate on `webhook-id`: delivery is at least once, a retry repeats the same id;
4. order by `data.seq` per thread: each event carries the full progress snapshot, so an
   event whose seq is not above the last one seen is history, not news.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from rich.console import Console
from rich.live import Live
from rich.text import Text

from enduro.webhooks.signing import verify

MAX_BODY = 1_000_000
SEEN_IDS = 10_000


class ProgressBoard:
    """Per-thread state of the receiver: ids seen, highest seq, and the progress line."""

    def __init__(self, out: TextIO, *, as_json: bool = False, live: bool | None = None) -> None:
        self.out = out
        self.as_json = as_json
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.last_seq: dict[str, int] = {}
        self.lines: dict[str, str] = {}
        self._lock = threading.Lock()
        # On a terminal: one line per thread, redrawn in place; elsewhere a line per event.
        if live is None:
            live = not as_json and out.isatty()
        self._live = (
            Live(console=Console(file=out, force_terminal=True), auto_refresh=False)
            if live
            else None
        )
        if self._live is not None:
            self._live.start()

    def close(self) -> None:
        """Stop redrawing the live display (a terminal only); the last lines stay."""
        if self._live is not None:
            self._live.stop()

    def accept(self, webhook_id: str, event: dict[str, Any]) -> str:
        """Record one verified event; returns what it was: new, duplicate or stale."""
        data = event.get("data") or {}
        thread_id, seq = str(data.get("thread_id")), int(data.get("seq") or 0)
        with self._lock:
            if webhook_id in self.seen:
                verdict = "duplicate"
            elif seq <= self.last_seq.get(thread_id, 0):
                verdict = "stale"
            else:
                verdict = "new"
                self.last_seq[thread_id] = seq
            self.seen[webhook_id] = None
            while len(self.seen) > SEEN_IDS:
                self.seen.popitem(last=False)
            self._print(verdict, webhook_id, event)
        return verdict

    def _print(self, verdict: str, webhook_id: str, event: dict[str, Any]) -> None:
        if self.as_json:
            line = json.dumps({"verdict": verdict, "webhook_id": webhook_id, **event})
        else:
            line = progress_line(event) + ("" if verdict == "new" else f"  ({verdict})")
        if self._live is not None:
            if verdict == "new":
                thread_id = str((event.get("data") or {}).get("thread_id"))
                self.lines[thread_id] = line
                self._live.update(Text("\n".join(self.lines.values())), refresh=True)
            return
        print(line, file=self.out, flush=True)


def progress_line(event: dict[str, Any]) -> str:
    """One line summing an event up: thread, seq, type, current step, progress and spend."""
    data = event.get("data") or {}
    p = data.get("progress") or {}
    u = data.get("usage") or {}
    step = data.get("current_step") or {}
    parts = [
        f"[{data.get('thread_id')}] #{data.get('seq')} {event.get('type')}",
        f"{p.get('steps_done', 0)}/{p.get('steps_total', 0)} {p.get('percent', 0)}%",
        str(data.get("status")),
    ]
    if step:
        parts.append(f"{step.get('id')} {step.get('title')!r}")
    if p.get("eta_seconds") is not None:
        parts.append(f"eta {_duration(float(p['eta_seconds']))}")
    if u.get("usd") is not None:
        parts.append(f"${float(u['usd']):.4f}")
    parts.append(f"{u.get('llm_calls', 0)} model calls")
    for key in ("tool", "warning", "error", "in_flight"):
        if data.get(key):
            parts.append(f"{key}={json.dumps(data[key], separators=(',', ':'))}")
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def make_server(
    host: str, port: int, secret: str | None, board: ProgressBoard, err: TextIO = sys.stderr
) -> ThreadingHTTPServer:
    """The receiver's HTTP server (not yet serving); `secret` None accepts unsigned deliveries."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass  # the board prints what matters

        def do_GET(self) -> None:
            self._answer(200, b"enduro webhook receiver: POST events here\n")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._answer(413, b"too large\n")
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                if secret is not None:
                    # Raw bytes, before any parsing: the signature covers them exactly.
                    verify(secret, body, headers)
                event = json.loads(body)
                if not isinstance(event, dict):
                    raise ValueError("body is not a JSON object")
            except Exception as exc:
                print(
                    f"rejected delivery {headers.get('webhook-id')!r}: {exc}", file=err, flush=True
                )
                self._answer(401 if secret is not None else 400, b"rejected\n")
                return
            board.accept(headers.get("webhook-id") or "", event)
            self._answer(204, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if body:
                self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
