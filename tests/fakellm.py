"""Scripted OpenAI-compatible chat-completions server for the enduro test suite.

Stdlib only.  Serves ``POST /v1/chat/completions`` (streaming and non-streaming) and
``GET /v1/models`` from a ``ThreadingHTTPServer`` running in a daemon thread.

Every chat request is classified into one of four kinds:

* ``"plan"``   -- the request's tools contain a function named ``Plan``;
* ``"review"`` -- the request's tools contain a function named ``StepReview``;
* ``"act"``    -- tools are present but neither of the above;
* ``"final"``  -- no tools.

and answered deterministically (see :class:`ScriptedLLM`).  Faults (HTTP errors, latency,
hangs, malformed tool arguments, cut streams) are injected with :meth:`ScriptedLLM.push`.

Usage::

    with ScriptedLLM(tool_use=True) as llm:
        model = ChatOpenAI(base_url=llm.base_url, api_key="test", model="fake-model")
        llm.push(Fault(kind="act", status=429, retry_after=0.1))
        ...
        assert llm.count("review") == 3

Standalone::

    python tests/fakellm.py --port 8765 [--latency 0.2] [--tool-use] [--steps "A" "B"]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["DEFAULT_STEPS", "Fault", "Recorded", "ScriptedLLM"]

DEFAULT_STEPS = ["Survey the topic", "Draft the findings", "Polish the summary"]
KINDS = ("plan", "review", "act", "final")
VERDICTS = ("done", "retry", "replan", "give_up")

STEP_RE = re.compile(r"Current step \[(?P<id>[^\]\n]+)\]:[ \t]*(?P<title>[^\n]*)")

UsageFn = Callable[[str, dict[str, Any]], tuple[int, int]]

# Default (type, code, message) per HTTP status when a Fault gives no error_code.
_DEFAULT_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Bad request (injected by fakellm)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", None, "Forbidden (injected by fakellm)."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("server_error", None, "Request timed out (injected by fakellm)."),
    409: ("server_error", None, "Conflict (injected by fakellm)."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (injected by fakellm)."),
    500: ("server_error", None, "The server had an error (injected by fakellm)."),
    502: ("server_error", None, "Bad gateway (injected by fakellm)."),
    503: ("server_error", None, "The engine is currently overloaded (injected by fakellm)."),
}

_ERROR_CODES: dict[str, tuple[str, str]] = {
    "insufficient_quota": (
        "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    "invalid_api_key": ("invalid_request_error", "Incorrect API key provided."),
    "context_length_exceeded": (
        "invalid_request_error",
        "This model's maximum context length is 8192 tokens. However, your messages resulted "
        "in more tokens. Please reduce the length of the messages.",
    ),
    "rate_limit_exceeded": ("requests", "Rate limit reached (injected by fakellm)."),
    "model_not_found": ("invalid_request_error", "The model does not exist."),
}


@dataclass
class Fault:
    """A scripted failure, consumed (``times`` times) by the next matching request(s)."""

    kind: str | None = None  # request kind it applies to; None = any kind
    status: int | None = None  # HTTP error status, e.g. 429, 500, 401, 400
    retry_after: float | None = None  # Retry-After (+ retry-after-ms) header, seconds
    error_code: str | None = None  # e.g. "insufficient_quota", "context_length_exceeded"
    delay: float = 0.0  # sleep before answering; a large value = hang (interrupted by stop())
    malformed: bool = False  # 200 answer whose tool-call arguments are not valid JSON
    cut_stream: bool = False  # send a couple of chunks, then drop the connection
    times: int = 1  # how many matching requests it applies to

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"Fault.kind must be one of {KINDS} or None, got {self.kind!r}")
        if self.times < 1:
            raise ValueError("Fault.times must be >= 1")


@dataclass
class Recorded:
    """One chat request as seen by the server."""

    kind: str
    step_id: str | None
    body: dict[str, Any]
    time: float  # time.time() at arrival
    status: int | None = None  # HTTP status returned (None while pending / never answered)
    ok: bool = False  # a complete 2xx answer was delivered (cut streams / dead clients: False)
    usage: tuple[int, int] = (0, 0)  # (prompt, completion) tokens billed for this answer
    fault: Fault | None = None  # the injected fault applied to this request, if any
    stream: bool = False

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])


@dataclass
class _Answer:
    """What the scripted model decided to say."""

    content: str | None = None
    tool_name: str | None = None
    arguments: str | None = None
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")
    more_calls: list[tuple[str, str, str]] = field(default_factory=list)
    """Further parallel tool calls of the same answer: (call id, name, arguments)."""

    def calls(self) -> list[tuple[str, str, str]]:
        first = [(self.call_id, self.tool_name, self.arguments or "")] if self.tool_name else []
        return first + self.more_calls

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_name else "stop"

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None}
        if self.tool_name:
            msg["tool_calls"] = [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, name, args in self.calls()
            ]
        return msg


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def _tool_names(body: dict[str, Any]) -> list[str]:
    names = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            fn = tool.get("function")
            if isinstance(fn, dict) and fn.get("name"):
                names.append(str(fn["name"]))
            elif tool.get("name"):
                names.append(str(tool["name"]))
    return names


def classify(body: dict[str, Any]) -> str:
    """Return the request kind: "plan", "review", "act" or "final"."""
    names = _tool_names(body)
    if "Plan" in names:
        return "plan"
    if "StepReview" in names:
        return "review"
    if body.get("tools"):
        return "act"
    return "final"


def find_step(messages: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """Last ``Current step [<id>]: <title>`` line in system/user messages (any role as fallback)."""
    found: tuple[str | None, str | None] = (None, None)
    fallback: tuple[str | None, str | None] = (None, None)
    for msg in messages:
        if not isinstance(msg, dict):
            continue
        for m in STEP_RE.finditer(_text_of(msg.get("content"))):
            hit = (m.group("id").strip(), m.group("title").strip())
            if msg.get("role") in ("system", "developer", "user"):
                found = hit
            else:
                fallback = hit
    return found if found[0] is not None else fallback


def _split(text: str, pieces: int = 3) -> list[str]:
    if not text:
        return []
    size = max(1, math.ceil(len(text) / pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    owner: ScriptedLLM

    def __init__(self, addr: tuple[str, int], owner: ScriptedLLM) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Forcibly close every open client connection (keep-alive ones included)."""
        with self._conns_lock:
            conns = list(self._conns)
            self._conns.clear()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError) or (isinstance(exc, ValueError) and "closed" in str(exc)):
            return  # client went away / socket closed by stop(): not interesting
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakellm/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing -------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Without this, header and body writes hit Nagle + delayed ACK: ~40 ms per answer.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:  # client disconnects, sockets dropped by stop()
            self.close_connection = True

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send_json(
        self, status: int, payload: Any, headers: dict[str, str] | None = None, cut: bool = False
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if cut:
            self.wfile.write(data[: max(1, len(data) // 3)])
            self._cut()
            return
        self.wfile.write(data)
        self.wfile.flush()

    def _cut(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _client_gone(self) -> bool:
        """True if the peer has already closed its side (e.g. timed out while we slept)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK)
            return peeked == b""
        except (OSError, ValueError):
            return True

    def _error(self, status: int, message: str, type_: str, code: str | None = None) -> None:
        self._send_json(
            status, {"error": {"message": message, "type": type_, "param": None, "code": code}}
        )

    # -- routes ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.endswith("/models"):
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {
                            "id": "fake-model",
                            "object": "model",
                            "created": 0,
                            "owned_by": "fakellm",
                        }
                    ],
                },
            )
        elif path in ("", "/health", "/v1"):
            self._send_json(200, {"status": "ok"})
        else:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error")

    def do_POST(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        if not path.endswith("/chat/completions"):
            self._error(404, f"Unknown path {self.path}", "invalid_request_error")
            return
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            self._error(400, f"Invalid JSON body: {exc}", "invalid_request_error")
            return
        try:
            self.server.owner._handle_chat(self, body)
        except OSError:  # client disconnected
            self.close_connection = True
        except Exception as exc:  # a bug in the fake: make it visible to the test
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._error(500, f"fakellm internal error: {exc!r}", "server_error")
            raise


class ScriptedLLM:
    """Deterministic OpenAI-compatible chat server for tests.

    Answers:

    * plan   -> tool call ``Plan`` ``{"steps": [{"title", "detail"}, ...]}`` from ``steps``;
    * review -> tool call ``StepReview`` ``{"verdict", "summary", "new_steps": []}``; verdicts
      come from ``verdicts[step_id]`` in order (str, or a dict merged into the arguments),
      then ``"done"``;
    * act    -> with ``tool_use`` and no ``role: tool`` message yet: tool call ``write_file``
      ``{"path": "notes/<id>.md", "content": "notes for <title>"}``; else ``"Result of <title>"``;
      ``act_script[step_id]`` (or ``act_script["*"]``) overrides this: round N of a step (N
      tool-calling answers already in its working messages) answers with the N-th batch of
      parallel tool calls ``[(name, args), ...]``, and with text past the script;
    * final  -> ``"Final report: ..."``.

    ``requests`` records every chat request; ``count()`` / ``billed_tokens()`` only consider
    successful answers (a complete 2xx response was delivered).  Malformed answers are 2xx and
    therefore count and are billed; cut streams and answers to clients that already hung up
    are not.
    """

    def __init__(
        self,
        *,
        steps: list[str] | None = None,
        tool_use: bool = False,
        latency: float = 0.0,
        usage_fn: UsageFn | None = None,
        verdicts: dict[str, list[Any]] | None = None,
        act_script: dict[str, list[list[tuple[str, dict[str, Any]]]]] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.steps = list(steps) if steps is not None else list(DEFAULT_STEPS)
        self.tool_use = tool_use
        self.latency = latency
        self.usage_fn = usage_fn
        self.verdicts: dict[str, list[Any]] = {k: list(v) for k, v in (verdicts or {}).items()}
        self.act_script: dict[str, list[list[tuple[str, dict[str, Any]]]]] = dict(act_script or {})
        self._act_script_config = dict(self.act_script)
        self._config = (list(self.steps), tool_use, latency, usage_fn, dict(self.verdicts))
        self.host = host
        self.port = port
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._review_seen: dict[str, int] = {}
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None and self.port == 0:
            raise RuntimeError("ScriptedLLM not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ScriptedLLM:
        """Start serving (again, on the same port, if previously stopped)."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fakellm:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and wake up hanging (delayed) handlers."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting / inspection -----------------------------------------------------------

    def push(self, fault: Fault) -> None:
        """Queue a fault (FIFO); consumed by the next request(s) whose kind matches."""
        with self._lock:
            self._faults.append(fault)

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget requests, faults and verdict progress; restore the constructor's script.

        Lets one server (one port) be shared by many tests: ChatOpenAI builds a new httpx
        client -- with two SSL contexts, ~50 ms -- for every base_url it has not seen.
        """
        steps, tool_use, latency, usage_fn, verdicts = self._config
        with self._cond:
            self.requests.clear()
            self._faults.clear()
            self._review_seen.clear()
            self.steps = list(steps)
            self.tool_use = tool_use
            self.latency = latency
            self.usage_fn = usage_fn
            self.verdicts = {k: list(v) for k, v in verdicts.items()}
            self.act_script = dict(self._act_script_config)

    def count(self, kind: str | None = None, step_id: str | None = None) -> int:
        """Successful answers, optionally filtered by kind and step id."""
        with self._lock:
            return sum(1 for r in self._matching(kind, step_id) if r.ok)

    def billed_tokens(self) -> tuple[int, int]:
        """Sum of (prompt, completion) tokens over successful answers."""
        with self._lock:
            ok = [r for r in self.requests if r.ok]
            return sum(r.usage[0] for r in ok), sum(r.usage[1] for r in ok)

    def wait_for(
        self,
        n: int = 1,
        kind: str | None = None,
        step_id: str | None = None,
        *,
        timeout: float = 5.0,
        answered: bool = False,
    ) -> bool:
        """Block until >= n matching requests arrived (or were answered successfully)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                rows = self._matching(kind, step_id)
                got = sum(1 for r in rows if r.ok) if answered else len(rows)
                if got >= n:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)

    def _matching(self, kind: str | None, step_id: str | None) -> list[Recorded]:
        return [
            r
            for r in self.requests
            if (kind is None or r.kind == kind) and (step_id is None or r.step_id == step_id)
        ]

    # -- request handling -----------------------------------------------------------------

    def _take_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.kind is None or fault.kind == kind:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self._faults[i]
                    return fault
        return None

    def _finish(self, rec: Recorded, status: int, ok: bool, usage: tuple[int, int]) -> None:
        with self._cond:
            rec.status = status
            rec.ok = ok
            rec.usage = usage if ok else (0, 0)
            self._cond.notify_all()

    def _usage(self, kind: str, body: dict[str, Any], answer: _Answer) -> tuple[int, int]:
        if self.usage_fn is not None:
            prompt, completion = self.usage_fn(kind, body)
            return int(prompt), int(completion)
        prompt = math.ceil(len(json.dumps(body.get("messages") or [])) / 4)
        text = answer.content if answer.content else (answer.arguments or "")
        return prompt, math.ceil(len(text) / 4) + 1

    def _answer(self, kind: str, body: dict[str, Any], malformed: bool) -> _Answer:
        messages = body.get("messages") or []
        step_id, title = find_step(messages) if kind in ("act", "review") else (None, None)
        title = title or "the current step"
        if kind == "plan":
            if malformed:
                return _Answer(tool_name="Plan", arguments='{"steps": [{"title": "Survey the')
            args: dict[str, Any] = {
                "steps": [{"title": t, "detail": f"Details for {t}."} for t in self.steps]
            }
            return _Answer(tool_name="Plan", arguments=json.dumps(args))
        if kind == "review":
            if malformed:
                return _Answer(tool_name="StepReview", arguments="verdict: done (not JSON")
            args = {"verdict": "done", "summary": f"Completed: {title}.", "new_steps": []}
            with self._lock:
                script = self.verdicts.get(step_id or "", [])
                idx = self._review_seen.get(step_id or "", 0)
                self._review_seen[step_id or ""] = idx + 1
            if idx < len(script):
                scripted = script[idx]
                if isinstance(scripted, dict):
                    args.update(scripted)
                else:
                    args["verdict"] = str(scripted)
                if args["verdict"] != "done" and "summary" not in (
                    scripted if isinstance(scripted, dict) else {}
                ):
                    args["summary"] = f"Step '{title}' verdict: {args['verdict']}."
            return _Answer(tool_name="StepReview", arguments=json.dumps(args))
        if kind == "act":
            if malformed:
                return _Answer(tool_name="write_file", arguments='{"path": "notes/')
            scripted_calls = self._scripted_calls(step_id, messages)
            if scripted_calls is not None:
                if not scripted_calls:
                    return _Answer(content=f"Result of {title}")
                (first_name, first_args), rest = scripted_calls[0], scripted_calls[1:]
                return _Answer(
                    tool_name=first_name,
                    arguments=json.dumps(first_args),
                    more_calls=[
                        (f"call_{uuid.uuid4().hex[:24]}", name, json.dumps(args))
                        for name, args in rest
                    ],
                )
            has_tool_result = any(isinstance(m, dict) and m.get("role") == "tool" for m in messages)
            if self.tool_use and not has_tool_result:
                args = {"path": f"notes/{step_id or 'step'}.md", "content": f"notes for {title}"}
                return _Answer(tool_name="write_file", arguments=json.dumps(args))
            return _Answer(content=f"Result of {title}")
        # final
        if malformed:
            return _Answer(content="")
        return _Answer(content=f"Final report: completed {len(self.steps)} planned steps.")

    def _scripted_calls(
        self, step_id: str | None, messages: list[Any]
    ) -> list[tuple[str, dict[str, Any]]] | None:
        """The batch of tool calls ``act_script`` gives this act request (by step id, or
        ``"*"`` for every step; the round is how many tool-calling answers the request's
        working messages already hold), ``[]`` past the script, None when unscripted."""
        script = self.act_script.get(step_id or "", self.act_script.get("*"))
        if script is None:
            return None
        rounds = sum(
            1
            for m in messages
            if isinstance(m, dict) and m.get("role") == "assistant" and m.get("tool_calls")
        )
        return list(script[rounds]) if rounds < len(script) else []

    def tool_results(self, step_id: str | None = None) -> list[dict[str, Any]]:
        """The ``role: tool`` messages of the latest act request (of ``step_id``): what the
        model was told its calls returned."""
        with self._lock:
            acts = [r for r in self.requests if r.kind == "act" and r.ok]
        if step_id is not None:
            acts = [r for r in acts if r.step_id == step_id]
        if not acts:
            return []
        return [m for m in acts[-1].messages if isinstance(m, dict) and m.get("role") == "tool"]

    def _sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False if the server is stopping."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _handle_chat(self, h: _Handler, body: dict[str, Any]) -> None:
        kind = classify(body)
        step_id = find_step(body.get("messages") or [])[0] if kind in ("act", "review") else None
        stream = bool(body.get("stream"))
        rec = Recorded(kind=kind, step_id=step_id, body=body, time=time.time(), stream=stream)
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
        fault = self._take_fault(kind)
        rec.fault = fault

        delay = self.latency + (fault.delay if fault else 0.0)
        if not self._sleep(delay):
            h.close_connection = True
            return  # stopped while "hanging": never answer
        if delay > 0 and h._client_gone():
            h.close_connection = True
            self._finish(rec, 499, False, (0, 0))
            return

        if fault is not None and fault.status is not None and fault.status >= 400:
            self._finish(rec, fault.status, False, (0, 0))
            self._send_fault(h, fault)
            return

        answer = self._answer(kind, body, malformed=bool(fault and fault.malformed))
        usage = self._usage(kind, body, answer)
        model = str(body.get("model") or "fake-model")
        cut = bool(fault and fault.cut_stream)
        headers = {}
        if fault is not None and fault.retry_after is not None:
            headers = self._retry_headers(fault.retry_after)

        # The answer is committed (counted and billed) just *before* its last bytes go out, so
        # that a client which has received it always sees it in count() / billed_tokens().
        # If the write then fails (client gone) the commit is undone.
        def commit() -> None:
            self._finish(rec, 200, True, usage)

        if cut:
            self._finish(rec, 200, False, (0, 0))
        try:
            if stream:
                opts = body.get("stream_options") or {}
                include_usage = bool(isinstance(opts, dict) and opts.get("include_usage"))
                self._send_stream(h, answer, model, usage, include_usage, cut, headers, commit)
            else:
                if not cut:
                    commit()
                h._send_json(200, self._completion(answer, model, usage), headers, cut=cut)
        except (OSError, ValueError):  # client gone / connection dropped by stop()
            self._finish(rec, 200, False, (0, 0))
            raise

    @staticmethod
    def _retry_headers(seconds: float) -> dict[str, str]:
        return {
            "Retry-After": _fmt_seconds(seconds),
            "retry-after-ms": str(round(seconds * 1000)),
        }

    def _send_fault(self, h: _Handler, fault: Fault) -> None:
        status = int(fault.status or 500)
        type_, code, message = _DEFAULT_ERRORS.get(
            status, ("server_error", None, f"Injected HTTP {status} (fakellm).")
        )
        if fault.error_code:
            code = fault.error_code
            type_, message = _ERROR_CODES.get(code, (type_, message))
        headers = {}
        if fault.retry_after is not None:
            headers = self._retry_headers(fault.retry_after)
        payload = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        h._send_json(status, payload, headers, cut=fault.cut_stream)

    @staticmethod
    def _completion(answer: _Answer, model: str, usage: tuple[int, int]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fakellm",
            "choices": [
                {
                    "index": 0,
                    "message": answer.message(),
                    "logprobs": None,
                    "finish_reason": answer.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
            },
        }

    @staticmethod
    def _chunks(
        answer: _Answer, model: str, usage: tuple[int, int], include_usage: bool
    ) -> Iterator[dict[str, Any]]:
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fakellm",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        if answer.tool_name:
            for index, (call_id, name, arguments) in enumerate(answer.calls()):
                yield chunk(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ],
                    }
                )
                for piece in _split(arguments):
                    yield chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
        else:
            yield chunk({"role": "assistant", "content": "", "refusal": None})
            for piece in _split(answer.content or ""):
                yield chunk({"content": piece})
        yield chunk({}, answer.finish_reason)
        if include_usage:
            yield {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fakellm",
                "choices": [],
                "usage": {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": usage[0] + usage[1],
                },
            }

    def _send_stream(
        self,
        h: _Handler,
        answer: _Answer,
        model: str,
        usage: tuple[int, int],
        include_usage: bool,
        cut: bool,
        headers: dict[str, str],
        commit: Callable[[], None],
    ) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for key, value in headers.items():
            h.send_header(key, value)
        h.end_headers()

        def send(data: bytes) -> None:
            h.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            h.wfile.flush()

        payloads = list(self._chunks(answer, model, usage, include_usage))
        for i, payload in enumerate(payloads):
            if cut and i >= 2:
                h._cut()  # no terminating zero-size chunk: client sees an incomplete body
                return
            if i == len(payloads) - 1:
                commit()
            send(f"data: {json.dumps(payload)}\n\n".encode())
        send(b"data: [DONE]\n\n")
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--tool-use", action="store_true")
    parser.add_argument("--steps", nargs="+", default=None)
    args = parser.parse_args(argv)
    llm = ScriptedLLM(
        steps=args.steps,
        tool_use=args.tool_use,
        latency=args.latency,
        host=args.host,
        port=args.port,
    ).start()
    print(f"fakellm listening on {llm.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        llm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
