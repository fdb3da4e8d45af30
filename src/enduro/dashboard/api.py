"""The JSON API behind the pages, documented at /openapi.json.

Answers are the status contract of `enduro status --json` (with `forecast`), so a user's own
frontend can use this instead of webhooks. Errors are `{"error": {"code", "message"}}`, as
`--json` prints them. Events are the outbox rows, exactly what webhooks carry; asked for
`text/event-stream`, the same route streams them live together with `status` snapshots.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from enduro import threads
from enduro.client import Client
from enduro.dashboard import actions, source
from enduro.storage import Backend

router = APIRouter(prefix="/api", tags=["threads"])

STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "waiting",
    "paused",
    "completed",
    "budget_exhausted",
    "cancelled",
    "failed",
)


class ThreadPage(BaseModel):
    """One page of threads, newest first."""

    items: list[dict[str, Any]] = Field(
        description="Status contract of each thread (with forecast and lease; without plan "
        "and report)"
    )
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null: last")


class Limits(BaseModel):
    """New limits for a resume; a limit left out carries over. All must be positive."""

    model_config = ConfigDict(extra="forbid")
    max_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="US dollars")
    max_minutes: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="minutes"
    )
    max_iterations: int | None = Field(default=None, gt=0)
    max_llm_calls: int | None = Field(default=None, gt=0)
    max_tool_calls: int | None = Field(default=None, gt=0)


class ActionResult(BaseModel):
    """The answer to a cancel or resume request (HTTP 202): the thread and what was done."""

    thread_id: str
    outcome: str = Field(
        description="cancel: requested (a running thread stops at its next step) or "
        "cancelled; resume: started"
    )


def _client(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def _backend(request: Request) -> Backend:
    return _client(request).backend


def error(status: int, code: str, message: str) -> JSONResponse:
    """An error answer in the CLI's `--json` error shape: `{"error": {"code", "message"}}`."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@router.get("/threads", response_model=ThreadPage)
async def list_threads(
    request: Request,
    status: Annotated[str | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Any:
    """Threads, newest first, keyset-paginated."""
    if status is not None and status not in STATUSES:
        return error(422, "bad_status", f"unknown status {status!r}: use one of {STATUSES}")
    try:
        items, next_cursor = await source.page(
            _backend(request), status=status, limit=limit, cursor=cursor
        )
    except ValueError as exc:
        return error(422, "bad_cursor", str(exc))
    return {"items": items, "next_cursor": next_cursor}


@router.get("/session")
async def session(request: Request) -> dict[str, bool]:
    """What the page needs to know of its own session: whether a token guards it."""
    return {"token_required": request.app.state.token_required}


async def _ref(request: Request, thread_id: str) -> str:
    """The id a path's thread reference stands for, as the CLI resolves it.

    A stored id or name wins (ids stored before names existed need not be UUIDs); otherwise a
    name's uuid5. An invalid reference comes back as given, so the lookup answers 404 with it.
    """
    return await threads.resolve_thread_id(_backend(request).db, thread_id)


@router.get("/threads/{thread_id}")
async def get_thread(request: Request, thread_id: str) -> Any:
    """The status contract (as `enduro status --json`) with `forecast`, `lease`, `plan_detail`.

    `lease` is the last sign of life, `plan_detail` each step's summary.
    """
    thread_id = await _ref(request, thread_id)
    try:
        return await source.thread(_backend(request), thread_id)
    except source.NotFound:
        return _unknown(thread_id)


@router.get("/threads/{thread_id}/events")
async def get_events(
    request: Request,
    thread_id: str,
    since: Annotated[int, Query(ge=0, description="return events with seq > since")] = 0,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """Events after `since`, as webhooks carry them.

    With `Accept: text/event-stream`: a live stream of `event` messages (id = seq; a reconnect
    resumes after Last-Event-ID) and `status` messages (the thread's status whenever it changes).
    """
    thread_id = await _ref(request, thread_id)
    backend = _backend(request)
    if (
        await backend.db.fetchone(
            "SELECT thread_id FROM enduro_threads WHERE thread_id = %s", (thread_id,)
        )
        is None
    ):
        return _unknown(thread_id)
    if "text/event-stream" not in request.headers.get("accept", ""):
        found = await source.events(backend, thread_id, since=since)
        return {"thread_id": thread_id, "events": found}
    if last_event_id and last_event_id.isdigit():
        since = max(since, int(last_event_id))
    poll = float(request.app.state.poll_seconds)
    return EventSourceResponse(_stream(backend, thread_id, since, poll), ping=15)


async def _stream(
    backend: Backend, thread_id: str, since: int, poll: float
) -> AsyncIterator[dict[str, Any]]:
    seen: tuple[Any, ...] | None = None
    while True:
        for event in await source.events(backend, thread_id, since=since):
            since = event["seq"]
            yield {"event": "event", "id": str(since), "data": json.dumps(event)}
        status = await source.thread(backend, thread_id)
        mark = (
            status["status"],
            status["updated_at"],
            status["checkpoint_id"],
            status["usage"]["usd"],
            status["lease"]["heartbeat_at"],
        )
        if mark != seen:
            seen = mark
            yield {"event": "status", "data": json.dumps(status, default=str)}
        await asyncio.sleep(poll)


@router.get("/threads/{thread_id}/spend")
async def get_spend(request: Request, thread_id: str) -> Any:
    """The ledger as series.

    Each model call (time, node, model, dollars as charged) and the running total by model and by
    node.
    """
    thread_id = await _ref(request, thread_id)
    try:
        return await source.spend(_backend(request), thread_id)
    except source.NotFound:
        return _unknown(thread_id)


@router.post("/threads/{thread_id}/cancel", response_model=ActionResult)
async def cancel(request: Request, thread_id: str) -> Any:
    """As `enduro cancel`: a running thread finishes gracefully at its next step."""
    thread_id = await _ref(request, thread_id)
    try:
        outcome = await source.cancel(_client(request), thread_id)
    except source.NotFound:
        return _unknown(thread_id)
    except source.Conflict as exc:
        return error(409, "conflict", str(exc))
    return {"thread_id": thread_id, "outcome": outcome}


@router.post("/threads/{thread_id}/resume", response_model=ActionResult, status_code=202)
async def resume(request: Request, thread_id: str, limits: Limits | None = None) -> Any:
    """As `enduro resume THREAD_ID --max-usd …`: continue from the last checkpoint.

    The limits given replace the stored ones (others carry over); the run goes on in a process of
    its own that outlives the request.
    """
    thread_id = await _ref(request, thread_id)
    given = limits.model_dump(exclude_none=True) if limits is not None else {}
    try:
        await actions.resume(request.app.state.runs, _backend(request), thread_id, given)
    except source.NotFound:
        return _unknown(thread_id)
    except source.Conflict as exc:
        return error(409, "conflict", str(exc))
    return JSONResponse({"thread_id": thread_id, "outcome": "started"}, status_code=202)


class Decision(BaseModel):
    """Which interrupt (see the status's `interrupts`); may be left out when one is pending."""

    model_config = ConfigDict(extra="forbid")
    interrupt_id: str | None = Field(default=None, max_length=200)


class Rejection(Decision):
    """The body of a reject request: which interrupt, and why (shown to the model)."""

    reason: str | None = Field(default=None, max_length=4000, description="the model reads it")


class Answer(Decision):
    """The body of an answer request: which question, and the person's answer text."""

    text: str = Field(min_length=1, max_length=20000, description="the answer")


async def _respond(
    request: Request, thread_id: str, command: str, decision: Decision, text: str | None
) -> Any:
    try:
        await actions.respond(
            request.app.state.runs,
            _backend(request),
            thread_id,
            command,
            decision.interrupt_id,
            text,
        )
    except source.NotFound:
        return _unknown(thread_id)
    except source.Conflict as exc:
        return error(409, "conflict", str(exc))
    return JSONResponse({"thread_id": thread_id, "outcome": "started"}, status_code=202)


@router.post("/threads/{thread_id}/approve", response_model=ActionResult, status_code=202)
async def approve(request: Request, thread_id: str, decision: Decision | None = None) -> Any:
    """As `enduro approve THREAD_ID [--id ID]`: run the waiting tool call and continue."""
    thread_id = await _ref(request, thread_id)
    return await _respond(request, thread_id, "approve", decision or Decision(), None)


@router.post("/threads/{thread_id}/reject", response_model=ActionResult, status_code=202)
async def reject(request: Request, thread_id: str, decision: Rejection | None = None) -> Any:
    """As `enduro reject THREAD_ID [--id ID] [--reason TEXT]`: skip the call and continue."""
    thread_id = await _ref(request, thread_id)
    decision = decision or Rejection()
    return await _respond(request, thread_id, "reject", decision, decision.reason)


@router.post("/threads/{thread_id}/answer", response_model=ActionResult, status_code=202)
async def answer(request: Request, thread_id: str, decision: Answer) -> Any:
    """As `enduro answer THREAD_ID [--id ID] TEXT`: answer the waiting question, continue."""
    thread_id = await _ref(request, thread_id)
    return await _respond(request, thread_id, "answer", decision, decision.text)


def _unknown(thread_id: str) -> JSONResponse:
    return error(404, "unknown_thread", f"unknown thread {thread_id!r}")
