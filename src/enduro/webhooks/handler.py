"""The LangChain callback handler that turns a graph run into events.

It is bound to the compiled graph (`build_graph(events=…)` does
`graph.with_config(callbacks=[handler])`), so it fires wherever the graph runs: in the
runner, and under `langgraph dev`, where no runner exists. It watches only the graph's own
node tasks (children of the root run) and reads their inputs and outputs: the state at the
start of a super-step and each node's update, never messages or tool arguments.

Segment events (run.started / resumed / paused / failed) come from the runner when it drives
the thread (it `prime`s the thread first, with facts the handler cannot see: the segment
number, the limits, how the previous segment ended); otherwise from the root run here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langgraph.errors import GraphDrained

from enduro._redact import redact
from enduro.context import EnduroContext
from enduro.state import FINISHED_STEP_STATUSES
from enduro.webhooks.events import (
    MAX_ERROR_CHARS,
    TERMINAL_EVENT,
    ThreadView,
    plan_summary,
)

log = logging.getLogger(__name__)

GRAPH_NAME = "enduro"
# Nodes whose work can take long; a heartbeat names the oldest one running.
WORK_NODES = frozenset({"plan", "act", "tools", "reflect", "finish"})


class Emitter(Protocol):
    """Where the handler's events go (an outbox session, or the env-configured one)."""

    @property
    def heartbeat_seconds(self) -> float: ...

    async def enabled(self, thread_id: str) -> bool: ...

    async def emit(
        self, view: ThreadView, kind: str, extra: dict[str, Any], dedupe: str | None
    ) -> int | None: ...


@dataclass
class _Thread:
    view: ThreadView
    runner_driven: bool = False
    roots: set[UUID] = field(default_factory=set)
    root_event_due: bool = False
    in_flight: dict[UUID, tuple[str, str | None, float]] = field(default_factory=dict)
    last_event: float = field(default_factory=time.monotonic)
    heartbeat: asyncio.Task[None] | None = None
    emitted: set[str] = field(default_factory=set)


@dataclass
class _Run:
    thread_id: str
    node: str
    started: float
    tool: str | None = None
    call_id: str | None = None


class WebhookHandler(AsyncCallbackHandler):
    # Awaited in order with the run, so events keep the order of the graph's callbacks.
    run_inline = True
    raise_error = False

    def __init__(self, emitter: Emitter, graph_name: str = GRAPH_NAME) -> None:
        self.emitter = emitter
        self.graph_name = graph_name
        self._threads: dict[str, _Thread] = {}
        self._root_of: dict[UUID, str] = {}
        self._runs: dict[UUID, _Run] = {}

    # Only chain callbacks are needed; skipping the rest keeps per-token overhead at zero.
    @property
    def ignore_llm(self) -> bool:
        return True

    @property
    def ignore_chat_model(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    # -- used by the runner ----------------------------------------------------------------

    def prime(
        self,
        thread_id: str,
        values: dict[str, Any],
        context: EnduroContext | None,
        segment: int | None,
    ) -> ThreadView:
        """The runner takes over segment events for `thread_id` and hands over what the
        handler cannot see from callbacks: the last checkpoint's state and the limits."""
        thread = self._threads.get(thread_id) or _Thread(ThreadView(thread_id))
        self._threads[thread_id] = thread
        thread.runner_driven = True
        thread.view.sync(values)
        thread.view.context = context
        thread.view.segment = segment
        return thread.view

    def prime_view(self, thread_id: str) -> ThreadView | None:
        thread = self._threads.get(thread_id)
        return thread.view if thread is not None else None

    async def emit(
        self, thread_id: str, kind: str, extra: dict[str, Any], dedupe: str | None = None
    ) -> int | None:
        thread = self._threads.get(thread_id)
        if thread is None:
            return None
        return await self._emit(thread, kind, extra, dedupe)

    async def forget(self, thread_id: str) -> None:
        thread = self._threads.pop(thread_id, None)
        if thread is not None:
            await _stop(thread)

    # -- callbacks -------------------------------------------------------------------------

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
        try:
            if parent_run_id is not None and parent_run_id in self._root_of:
                await self._node_start(run_id, parent_run_id, inputs, metadata or {}, kwargs)
            elif parent_run_id is None or kwargs.get("name") == self.graph_name:
                await self._root_start(run_id, metadata or {})
        except Exception as exc:  # events are best effort; the run must go on
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
        try:
            if run_id in self._runs:
                await self._node_end(run_id, outputs)
            elif run_id in self._root_of:
                await self._root_end(run_id, None)
        except Exception as exc:
            log.warning(
                "webhook handler: %s", redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
            )

    async def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            run = self._runs.pop(run_id, None)
            if run is not None:
                thread = self._threads.get(run.thread_id)
                if thread is not None:
                    thread.in_flight.pop(run_id, None)
            elif run_id in self._root_of:
                await self._root_end(run_id, error)
        except Exception as exc:
            log.warning(
                "webhook handler: %s", redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS)
            )

    # -- root run --------------------------------------------------------------------------

    async def _root_start(self, run_id: UUID, metadata: dict[str, Any]) -> None:
        thread_id = metadata.get("thread_id")
        if not thread_id or not await self.emitter.enabled(str(thread_id)):
            return
        thread_id = str(thread_id)
        thread = self._threads.get(thread_id) or _Thread(ThreadView(thread_id))
        self._threads[thread_id] = thread
        thread.roots.add(run_id)
        self._root_of[run_id] = thread_id
        # Without a runner the first node's input (the full state) is awaited, so that
        # run.started / run.resumed carry the thread's progress rather than an empty one.
        thread.root_event_due = not thread.runner_driven
        thread.last_event = time.monotonic()
        if thread.heartbeat is None or thread.heartbeat.done():
            thread.heartbeat = asyncio.create_task(
                self._heartbeat(thread), name=f"enduro-heartbeat:{thread_id}"
            )

    async def _root_end(self, run_id: UUID, error: BaseException | None) -> None:
        thread_id = self._root_of.pop(run_id)
        thread = self._threads.get(thread_id)
        if thread is None:
            return
        thread.roots.discard(run_id)
        if not thread.runner_driven:
            if thread.root_event_due:
                await self._root_event(thread)
            if isinstance(error, GraphDrained):
                thread.view.status, thread.view.stop_reason = "paused", error.reason
                await self._emit(thread, "run.paused", {})
            elif isinstance(error, asyncio.CancelledError):
                thread.view.status, thread.view.stop_reason = "paused", "cancelled"
                await self._emit(thread, "run.paused", {})
            elif error is not None:
                thread.view.status = "failed"
                thread.view.stop_reason = f"{type(error).__name__}: {error}"
                await self._emit(thread, "run.failed", {"error": error_info(error)})
        if not thread.roots:
            await _stop(thread)
            if not thread.runner_driven:
                self._threads.pop(thread_id, None)

    async def _root_event(self, thread: _Thread) -> None:
        thread.root_event_due = False
        if await self._emit(thread, "run.started", {}, "run.started") is None:
            await self._emit(thread, "run.resumed", {"resumed_from": None})

    # -- nodes -----------------------------------------------------------------------------

    async def _node_start(
        self,
        run_id: UUID,
        parent: UUID,
        inputs: Any,
        metadata: dict[str, Any],
        kwargs: dict[str, Any],
    ) -> None:
        thread_id = self._root_of[parent]
        thread = self._threads[thread_id]
        node = str(metadata.get("langgraph_node") or kwargs.get("name") or "")
        run = _Run(thread_id, node, time.monotonic())
        self._runs[run_id] = run
        if isinstance(inputs, dict) and "goal" in inputs:
            thread.view.sync(inputs)
        if node == "tools" and isinstance(inputs, dict):
            call = inputs.get("call") or {}
            # The tool's name and call id only: its arguments never leave the process.
            run.tool = str(call.get("name") or "") or None
            run.call_id = str(call.get("id") or "") or None
        if thread.root_event_due:
            await self._root_event(thread)
        if node in WORK_NODES:
            step_id = thread.view.current if node != "plan" else None
            thread.in_flight[run_id] = (node, step_id, run.started)
        if node == "act":
            step = thread.view.step(thread.view.current)
            if step is not None:
                attempt = int(step.get("attempts") or 0) + 1
                key = f"step.started:{step['id']}:{attempt}"
                if key not in thread.emitted:
                    thread.emitted.add(key)
                    info = {"id": step["id"], "title": step["title"], "attempt": attempt}
                    await self._emit(thread, "step.started", {"step": info}, key)

    async def _node_end(self, run_id: UUID, outputs: Any) -> None:
        run = self._runs.pop(run_id)
        thread = self._threads.get(run.thread_id)
        if thread is None:
            return
        thread.in_flight.pop(run_id, None)
        update = outputs if isinstance(outputs, dict) else {}
        view = thread.view
        before = {s["id"]: s.get("status") for s in view.plan}
        warned = list(view.warnings)
        view.apply(update)
        if run.node == "tools" and run.tool:
            messages = update.get("messages") or []
            failed = any(getattr(m, "status", None) == "error" for m in messages)
            tool = {
                "name": run.tool,
                "duration_ms": round((time.monotonic() - run.started) * 1000),
                "ok": not failed,
            }
            dedupe = f"tool.called:{run.call_id}" if run.call_id else None
            await self._emit(thread, "tool.called", {"tool": tool}, dedupe)
        elif run.node == "guard":
            for tag in view.warnings:
                if tag not in warned:
                    await self._emit(
                        thread,
                        "budget.warning",
                        {"warning": warning_info(tag)},
                        # With the limit's value: a warning that fires again after a resume
                        # raised the limit is a new event, not a duplicate.
                        f"budget.warning:{tag}:{_limit_value(view, tag)}",
                    )
        elif run.node == "finish":
            kind = TERMINAL_EVENT.get(view.status, "run.completed")
            await self._emit(thread, kind, {}, f"{kind}:{self._segment_key(thread, run_id)}")
        if run.node == "reflect":
            for step in view.plan:
                finished = step.get("status") in FINISHED_STEP_STATUSES
                if finished and before.get(step["id"]) not in FINISHED_STEP_STATUSES:
                    info = {"id": step["id"], "title": step["title"], "status": step["status"]}
                    await self._emit(
                        thread, "step.completed", {"step": info}, f"step.completed:{step['id']}"
                    )
        if (
            run.node in ("plan", "reflect")
            and "plan" in update
            and list(before) != [s["id"] for s in view.plan]
        ):
            ids = ",".join(s["id"] for s in view.plan)
            digest = hashlib.sha256(ids.encode()).hexdigest()[:16]
            await self._emit(
                thread, "plan.updated", {"plan": plan_summary(view)}, f"plan.updated:{digest}"
            )

    def _segment_key(self, thread: _Thread, run_id: UUID) -> str:
        if thread.view.segment is not None:
            return str(thread.view.segment)
        return ",".join(sorted(str(r) for r in thread.roots)) or str(run_id)

    # -- heartbeat and emission -------------------------------------------------------------

    async def _heartbeat(self, thread: _Thread) -> None:
        """`run.heartbeat` whenever `heartbeat_seconds` pass without an event while a node
        is running: a five-minute model call still shows the run is alive."""
        while True:
            every = self.emitter.heartbeat_seconds
            wait = thread.last_event + every - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if not thread.in_flight:
                await asyncio.sleep(min(every, 1.0))
                continue
            node, step_id, since = min(thread.in_flight.values(), key=lambda f: f[2])
            running = {
                "node": node,
                "step_id": step_id,
                "seconds": round(time.monotonic() - since, 1),
            }
            if await self._emit(thread, "run.heartbeat", {"in_flight": running}) is None:
                thread.last_event = time.monotonic()  # failed write: try again a beat later

    async def _emit(
        self, thread: _Thread, kind: str, extra: dict[str, Any], dedupe: str | None = None
    ) -> int | None:
        try:
            seq = await self.emitter.emit(thread.view, kind, extra, dedupe)
        except Exception as exc:
            # The outbox lives in the checkpoint database: if it cannot be written the next
            # checkpoint will fail loudly too. Here the event is lost, never the run.
            log.warning(
                "could not write webhook event %s for thread %s: %s",
                kind,
                thread.view.thread_id,
                redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS),
            )
            return None
        if seq is not None:
            thread.last_event = time.monotonic()
        return seq


async def _stop(thread: _Thread) -> None:
    task, thread.heartbeat = thread.heartbeat, None
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def warning_info(tag: str) -> dict[str, Any]:
    """`max_usd:80` -> {"code": "max_usd:80", "limit": "max_usd", "percent": 80}; other
    shapes (the budget guard may add some) keep their code and nothing else."""
    limit, _, pct = tag.partition(":")
    info: dict[str, Any] = {"code": tag, "limit": None, "percent": None}
    if pct.replace(".", "", 1).isdigit():
        info["limit"] = limit
        info["percent"] = float(pct) if "." in pct else int(pct)
    return info


def error_info(error: BaseException) -> dict[str, Any]:
    return {"type": type(error).__name__, "message": redact(str(error), MAX_ERROR_CHARS)}


def _limit_value(view: ThreadView, tag: str) -> object:
    limits = view.context.limits() if view.context is not None else {}
    return limits.get(tag.partition(":")[0])
