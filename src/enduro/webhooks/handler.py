"""The LangChain callback handler that writes what a run says to the outbox.

It is bound to the compiled graph (`build_graph(events=…)` does
`graph.with_config(callbacks=[handler])`), so it fires wherever the graph runs: in the
runner, and under `langgraph dev`, where no runner exists.

Invariants:
- It keeps no copy of the graph's state and infers nothing from it. Events are said by the
  nodes (`enduro.events`, received in `on_custom_event`) and by the runner (`said`,
  `stopped`); the handler writes them. Per thread it holds only the heartbeat clock, the
  node runs in flight, and the thread picture carried by the last event, which heartbeats,
  tool.called (a tool task sees only its own call) and run.paused / run.failed repeat.
- Heartbeats are time-driven: `run.heartbeat` once `heartbeat_seconds` pass without an
  event while a node runs.
- Segment events (run.started / resumed / paused / failed) are the runner's when it drives
  the thread (its run config carries `enduro_segment`); otherwise (`langgraph dev`) they
  come from the root run's own start and end, the only facts a callback has about them.
- Best effort: a failing write is logged (redacted) and the run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langgraph.errors import GraphDrained

from enduro._redact import redact
from enduro.events import (
    EVENT_NAME,
    ErrorInfo,
    Event,
    EventType,
    Fields,
    InFlight,
    InterruptBrief,
    ThreadSnapshot,
    event,
)
from enduro.webhooks.events import MAX_ERROR_CHARS, empty_snapshot

log = logging.getLogger(__name__)

GRAPH_NAME = "enduro"
# Nodes whose work can take long; a heartbeat names the oldest one running.
WORK_NODES = frozenset({"plan", "act", "tools", "reflect", "finish"})


class Emitter(Protocol):
    """Where the handler's events go (an outbox session, or the env-configured one)."""

    @property
    def heartbeat_seconds(self) -> float:
        """Seconds without an event, while a node runs, before a run.heartbeat."""
        ...

    async def enabled(self, thread_id: str) -> bool:
        """Whether the thread has any endpoint (events of other threads are not written)."""
        ...

    async def emit(
        self,
        thread_id: str,
        kind: str,
        thread: ThreadSnapshot,
        fields: Fields,
        dedupe: str | None,
    ) -> int | None:
        """Write one event; its seq, or None when nothing was written."""
        ...


@dataclass
class _Thread:
    """What the handler holds of one thread: no graph state (see the module docstring)."""

    thread_id: str
    runner_driven: bool = False
    roots: set[UUID] = field(default_factory=set)
    start_due: bool = False
    in_flight: dict[UUID, tuple[str, float]] = field(default_factory=dict)
    last: ThreadSnapshot = field(default_factory=empty_snapshot)
    last_event: float = field(default_factory=time.monotonic)
    heartbeat: asyncio.Task[None] | None = None


class WebhookHandler(AsyncCallbackHandler):
    """Receives the events a run says and writes them with `emitter`.

    Args:
        emitter: the outbox writer (`WebhookSession`, or `EnvWebhooks` under langgraph dev).
        graph_name: the compiled graph's name, which identifies its root run.
    """

    # Awaited in order with the run, so events keep the order in which they were said.
    run_inline = True
    raise_error = False

    def __init__(self, emitter: Emitter, graph_name: str = GRAPH_NAME) -> None:
        """See the class docstring."""
        self.emitter = emitter
        self.graph_name = graph_name
        self._threads: dict[str, _Thread] = {}
        self._root_of: dict[UUID, str] = {}
        self._node_of: dict[UUID, str] = {}

    # Chain callbacks (runs in flight) and custom events only: no per-token overhead.
    @property
    def ignore_llm(self) -> bool:
        """Model callbacks are not needed."""
        return True

    @property
    def ignore_chat_model(self) -> bool:
        """Chat model callbacks are not needed."""
        return True

    @property
    def ignore_retriever(self) -> bool:
        """Retriever callbacks are not needed."""
        return True

    @property
    def ignore_agent(self) -> bool:
        """Agent callbacks are not needed."""
        return True

    @property
    def ignore_retry(self) -> bool:
        """Retry callbacks are not needed."""
        return True

    # -- what the runner says ----------------------------------------------------------------

    async def said(self, said: Event) -> int | None:
        """Write an event the runner says (run.started / run.resumed).

        The runner then drives the thread's segment events until `forget`.

        Returns:
            The event's seq, or None when nothing was written.
        """
        thread = self._thread(said["thread_id"])
        thread.runner_driven = True
        return await self._write(thread, said)

    async def stopped(
        self, thread_id: str, status: str, stop_reason: str | None, segment: int | None
    ) -> int | None:
        """Write run.paused / run.failed for a segment the runner saw end outside finish."""
        thread = self._threads.get(thread_id)
        if thread is None or status not in ("paused", "failed"):
            return None
        fields: Fields = {}
        if status == "failed":
            kind, _, message = (stop_reason or "").partition(": ")
            fields["error"] = {"type": kind or None, "message": message or stop_reason}
        dedupe = f"run.{status}:{segment}"
        return await self._stop_event(thread, status, stop_reason, fields, dedupe)

    async def waiting(
        self, thread_id: str, interrupts: list[InterruptBrief], segment: int | None
    ) -> int | None:
        """Write run.waiting for a segment the runner saw stop for a person."""
        thread = self._threads.get(thread_id)
        if thread is None:
            return None
        picture: ThreadSnapshot = {**thread.last, "status": "waiting", "stop_reason": None}
        fields: Fields = {"interrupts": interrupts}
        said = event("run.waiting", thread_id, picture, fields, f"run.waiting:{segment}")
        return await self._write(thread, said)

    async def forget(self, thread_id: str) -> None:
        """Stop the thread's heartbeat and drop what the handler holds of it."""
        thread = self._threads.pop(thread_id, None)
        if thread is not None:
            await _stop(thread)

    # -- callbacks ---------------------------------------------------------------------------

    async def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write an event a node said (`enduro.events.say`) for a thread with endpoints."""
        if name != EVENT_NAME or not isinstance(data, dict):
            return
        thread = self._threads.get(str(data.get("thread_id")))
        if thread is None:  # no endpoint: nothing to write
            return
        said: Event = data  # type: ignore[assignment]
        try:
            if thread.start_due:
                if said["thread"] is not None:
                    thread.last = said["thread"]
                await self._root_event(thread)
            await self._write(thread, said)
        except Exception as exc:  # events are best effort; the run must go on
            log.warning(
                "webhook handler: %s", redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
            )

    async def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Note a node run in flight (for heartbeats), or a root run starting."""
        try:
            if parent_run_id is not None and parent_run_id in self._root_of:
                await self._node_start(run_id, parent_run_id, metadata or {}, kwargs)
            elif parent_run_id is None or kwargs.get("name") == self.graph_name:
                await self._root_start(run_id, metadata or {})
        except Exception as exc:
            log.warning(
                "webhook handler: %s", redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
            )

    async def on_chain_end(
        self,
        outputs: dict[str, Any] | Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A node run or the root run ended."""
        await self._ended(run_id, None)

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A node run or the root run raised (a drain, a cancel, a failure)."""
        await self._ended(run_id, error)

    # -- runs --------------------------------------------------------------------------------

    async def _root_start(self, run_id: UUID, metadata: dict[str, Any]) -> None:
        thread_id = metadata.get("thread_id")
        if not thread_id or not await self.emitter.enabled(str(thread_id)):
            return
        thread = self._thread(str(thread_id))
        thread.roots.add(run_id)
        self._root_of[run_id] = thread.thread_id
        if "enduro_segment" not in metadata and not thread.runner_driven:
            # No runner: the root run stands for the segment. Its event waits for the first
            # node, so that it carries the thread's progress rather than an empty picture.
            thread.start_due = True
        thread.last_event = time.monotonic()
        if thread.heartbeat is None or thread.heartbeat.done():
            thread.heartbeat = asyncio.create_task(
                self._heartbeat(thread), name=f"enduro-heartbeat:{thread.thread_id}"
            )

    async def _node_start(
        self, run_id: UUID, parent: UUID, metadata: dict[str, Any], kwargs: dict[str, Any]
    ) -> None:
        thread = self._threads.get(self._root_of[parent])
        if thread is None:
            return
        node = str(metadata.get("langgraph_node") or kwargs.get("name") or "")
        self._node_of[run_id] = thread.thread_id
        if node in WORK_NODES:
            thread.in_flight[run_id] = (node, time.monotonic())

    async def _ended(self, run_id: UUID, error: BaseException | None) -> None:
        try:
            thread_id = self._node_of.pop(run_id, None)
            if thread_id is not None:
                thread = self._threads.get(thread_id)
                if thread is not None:
                    thread.in_flight.pop(run_id, None)
            elif run_id in self._root_of:
                await self._root_end(run_id, error)
        except Exception as exc:
            log.warning(
                "webhook handler: %s", redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
            )

    async def _root_end(self, run_id: UUID, error: BaseException | None) -> None:
        thread = self._threads.get(self._root_of.pop(run_id))
        if thread is None:
            return
        thread.roots.discard(run_id)
        if not thread.runner_driven:
            if thread.start_due:
                await self._root_event(thread)
            if isinstance(error, GraphDrained):
                await self._stop_event(thread, "paused", error.reason, {}, None)
            elif isinstance(error, asyncio.CancelledError):
                await self._stop_event(thread, "paused", "cancelled", {}, None)
            elif error is not None:
                reason = f"{type(error).__name__}: {error}"
                await self._stop_event(thread, "failed", reason, {"error": error_info(error)}, None)
        if not thread.roots:
            await _stop(thread)
            if not thread.runner_driven:
                self._threads.pop(thread.thread_id, None)

    async def _root_event(self, thread: _Thread) -> None:
        """run.started the first time a thread runs, run.resumed after that (no runner)."""
        thread.start_due = False
        started = event("run.started", thread.thread_id, thread.last, dedupe="run.started")
        if await self._write(thread, started) is None:
            # How the last segment ended is the runner's knowledge; without one, unknown.
            resumed: Fields = {"resumed_from": None}
            await self._write(thread, event("run.resumed", thread.thread_id, None, resumed))

    async def _stop_event(
        self,
        thread: _Thread,
        status: str,
        stop_reason: str | None,
        fields: Fields,
        dedupe: str | None,
    ) -> int | None:
        picture: ThreadSnapshot = {**thread.last, "status": status, "stop_reason": stop_reason}
        kind: EventType = "run.failed" if status == "failed" else "run.paused"
        return await self._write(thread, event(kind, thread.thread_id, picture, fields, dedupe))

    # -- heartbeat and writing ---------------------------------------------------------------

    async def _heartbeat(self, thread: _Thread) -> None:
        """Write `run.heartbeat` after `heartbeat_seconds` without an event while a node runs.

        A five-minute model call still shows the run is alive. The quiet time counts from
        the later of the last event and the oldest running node's start, so a beat never
        names a node that has only just started.
        """
        while True:
            every = self.emitter.heartbeat_seconds
            if not thread.in_flight:
                await asyncio.sleep(min(every, 1.0))
                continue
            node, since = min(thread.in_flight.values(), key=lambda f: f[1])
            wait = max(thread.last_event, since) + every - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if thread.start_due:  # a slow first node: the segment's event comes first
                await self._root_event(thread)
            running: InFlight = {
                "node": node,
                "step_id": None if node == "plan" else thread.last["current"],
                "seconds": round(time.monotonic() - since, 1),
            }
            beat = event("run.heartbeat", thread.thread_id, None, {"in_flight": running})
            if await self._write(thread, beat) is None:
                thread.last_event = time.monotonic()  # failed write: try again a beat later

    def _thread(self, thread_id: str) -> _Thread:
        thread = self._threads.get(thread_id)
        if thread is None:
            thread = self._threads[thread_id] = _Thread(thread_id)
        return thread

    async def _write(self, thread: _Thread, said: Event) -> int | None:
        if said["thread"] is not None:
            thread.last = said["thread"]
        kind, fields = said["type"], said["fields"]
        try:
            seq = await self.emitter.emit(
                thread.thread_id, kind, thread.last, fields, said["dedupe"]
            )
        except Exception as exc:
            # The outbox lives in the checkpoint database: if it cannot be written the next
            # checkpoint will fail loudly too. Here the event is lost, never the run.
            log.warning(
                "could not write webhook event %s for thread %s: %s",
                kind,
                thread.thread_id,
                redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS),
            )
            return None
        if seq is not None:
            thread.last_event = time.monotonic()
        return seq


def _log_failure(exc: Exception) -> None:
    log.warning("webhook handler: %s", redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS))


async def _stop(thread: _Thread) -> None:
    task, thread.heartbeat = thread.heartbeat, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def error_info(error: BaseException) -> ErrorInfo:
    """The run.failed payload of an exception: its class name and redacted message."""
    return {"type": type(error).__name__, "message": redact(str(error), MAX_ERROR_CHARS)}
