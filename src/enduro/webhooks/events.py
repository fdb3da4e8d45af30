"""Event types, the per-thread view the handler keeps, and the event envelope.

The envelope is the Standard Webhooks one, `{"type", "timestamp", "data"}`; `data` is a
small snapshot built with `enduro.status.build_status` (so it says what `enduro status`
says) plus the fields of the event's type. Never a transcript, a tool's arguments or a
secret: docs/webhook-event.schema.json is the contract, versioned by `data.version`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enduro._redact import redact
from enduro.budgets.report import SpendView
from enduro.context import EnduroContext
from enduro.status import build_status
from enduro.storage.leases import this_owner
from enduro.threads import ThreadRow

SCHEMA_VERSION = 1

EVENT_TYPES: tuple[str, ...] = (
    "run.started",
    "run.resumed",
    "plan.updated",
    "step.started",
    "step.completed",
    "tool.called",
    "budget.warning",
    "run.heartbeat",
    "run.paused",
    "run.completed",
    "run.budget_exhausted",
    "run.cancelled",
    "run.failed",
)
TERMINAL_EVENT = {
    "completed": "run.completed",
    "budget_exhausted": "run.budget_exhausted",
    "cancelled": "run.cancelled",
    "failed": "run.failed",
    "paused": "run.paused",
}
# Beyond this the plan list is dropped from `data` (it is the only part that can grow).
MAX_BODY_BYTES = 32_000
MAX_ERROR_CHARS = 500


@dataclass
class ThreadView:
    """What the handler knows of one thread's state: refreshed from every node's input (the
    full state at the start of the super-step) and advanced by node outputs in between."""

    thread_id: str
    goal: str = ""
    plan: list[dict[str, Any]] = field(default_factory=list)
    current: str | None = None
    usage: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    status: str = "running"
    stop_reason: str | None = None
    context: EnduroContext | None = None
    segment: int | None = None
    archive: dict[str, int] | None = None

    def sync(self, state: dict[str, Any]) -> None:
        self.goal = str(state.get("goal") or self.goal)
        self.plan = [dict(s) for s in state.get("plan") or []]
        self.current = state.get("current")
        self.usage = dict(state.get("usage") or {})
        self.warnings = list(state.get("warnings") or [])
        status = state.get("status")
        # A checkpoint still says `completed` when a finished thread is entered again.
        self.status = "running" if status in (None, "running") else str(status)
        self.stop_reason = state.get("stop_reason")
        self.archive = state.get("archive")

    def apply(self, update: dict[str, Any]) -> None:
        if "plan" in update:
            self.plan = [dict(s) for s in update["plan"] or []]
        if "current" in update:
            self.current = update["current"]
        for key, value in (update.get("usage") or {}).items():
            self.usage[key] = self.usage.get(key, 0) + value
        if "warnings" in update:
            self.warnings = list(update["warnings"] or [])
        if "status" in update:
            self.status = str(update["status"])
        if "stop_reason" in update:
            self.stop_reason = update["stop_reason"]
        if "archive" in update:
            self.archive = update["archive"]

    def step(self, step_id: str | None) -> dict[str, Any] | None:
        return next((s for s in self.plan if s.get("id") == step_id), None)


def eta_seconds(progress: dict[str, Any], active_seconds: float) -> float | None:
    """Remaining steps times the mean active time of the steps done so far: None until a
    step is done, 0 when none remain."""
    done, total = int(progress["steps_done"]), int(progress["steps_total"])
    if total and done >= total:
        return 0.0
    if done <= 0:
        return None
    return round(active_seconds / done * (total - done), 1)


def iso_now(at: float | None = None) -> str:
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot(
    view: ThreadView, checkpoint_id: str | None, spend: SpendView | None = None
) -> dict[str, Any]:
    """The part of `data` every event carries, from the status JSON."""
    row = ThreadRow(
        thread_id=view.thread_id,
        goal=view.goal,
        status=view.status,
        stop_reason=view.stop_reason,
        context=view.context or EnduroContext(),
        created_at=0.0,
        updated_at=time.time(),
        # Marks the row as live, so `effective_status` keeps a running thread `running`.
        owner=this_owner(),
        heartbeat_at=time.time(),
        cancel_requested=False,
        segments=view.segment or 0,
    )
    # A non-None report keeps build_status from rendering one that the event would drop.
    values = {
        "plan": view.plan,
        "current": view.current,
        "usage": view.usage,
        "warnings": view.warnings,
        "archive": view.archive,
        "report": "",
    }
    status = build_status(row, values, checkpoint_id, spend)
    progress = dict(status["progress"])
    progress["eta_seconds"] = eta_seconds(progress, float(status["usage"]["active_seconds"]))
    step = view.step(view.current)
    return {
        "thread_id": view.thread_id,
        "status": status["status"],
        "stop_reason": redact(status["stop_reason"], MAX_ERROR_CHARS),
        "segment": view.segment,
        "progress": progress,
        "current_step": {"id": step["id"], "title": step["title"]} if step else None,
        "usage": status["usage"],
        "limits": status["limits"],
        "warnings": status["warnings"],
        "checkpoint_id": checkpoint_id,
        "forecast": status["forecast"],
    }


def plan_summary(view: ThreadView) -> list[dict[str, Any]]:
    return [{"id": s["id"], "title": s["title"], "status": s["status"]} for s in view.plan]


def render_body(
    kind: str,
    *,
    event_id: str,
    seq: int,
    created_at: float,
    base: dict[str, Any],
    extra: dict[str, Any],
) -> str:
    """The exact JSON text that is stored, signed and sent (compact, keys in a fixed order)."""
    data = {"version": SCHEMA_VERSION, "id": event_id, "seq": seq, **base, **extra}
    body = _dump(kind, created_at, data)
    if len(body.encode()) > MAX_BODY_BYTES and "plan" in data:
        data = {**data, "plan": None, "truncated": True}
        body = _dump(kind, created_at, data)
    return body


def _dump(kind: str, created_at: float, data: dict[str, Any]) -> str:
    envelope = {"type": kind, "timestamp": iso_now(created_at), "data": data}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, default=str)
