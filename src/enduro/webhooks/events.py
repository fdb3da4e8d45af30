"""The event envelope: what an `enduro.events.Event` looks like on the wire.

The envelope is the Standard Webhooks one, `{"type", "timestamp", "data"}`; `data` is the
thread as the event's sayer saw it (`snapshot`, with the figures `enduro status` shows)
plus the fields of the event's type. Never a transcript, a tool's arguments or a secret:
free text is redacted (`enduro._redact.redact`), and docs/webhook-event.schema.json is
the contract, versioned by `data.version`.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any, get_args

from enduro._redact import redact
from enduro.budgets.limits import final_reserve_usd
from enduro.budgets.report import SpendView
from enduro.events import EventType, ThreadSnapshot, thread_snapshot
from enduro.forecast import forecast
from enduro.report import progress as report_progress
from enduro.state import USAGE_KEYS

SCHEMA_VERSION = 1

EVENT_TYPES: tuple[str, ...] = get_args(EventType)
# Beyond this the plan list is dropped from `data` (it is the only part that can grow).
MAX_BODY_BYTES = 32_000
MAX_ERROR_CHARS = 500

_SECRETS = [
    re.compile(r"whsec_[A-Za-z0-9+/=]+"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=\-]+"),
    re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|sig)=[^&\s'\"]+"),
    re.compile(r"(?<=://)[^/@\s'\"]+@"),
]


def eta_seconds(progress: dict[str, Any], active_seconds: float) -> float | None:
    """Seconds left: remaining steps times the mean active time of the steps done.

    None until a step is done, 0 when none remain.
    """
    done, total = int(progress["steps_done"]), int(progress["steps_total"])
    if total and done >= total:
        return 0.0
    if done <= 0:
        return None
    return round(active_seconds / done * (total - done), 1)


def iso_now(at: float | None = None) -> str:
    """`at` (epoch seconds; default now) as UTC ISO 8601 with milliseconds and a Z."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def empty_snapshot() -> ThreadSnapshot:
    """The thread before anything was said of it: running, no plan, no usage."""
    return thread_snapshot({}, None, None)


def snapshot(
    thread_id: str,
    thread: ThreadSnapshot,
    checkpoint_id: str | None,
    spend: SpendView | None = None,
) -> dict[str, Any]:
    """The part of `data` every event carries: the thread as the event's sayer saw it.

    Figures are those of `enduro status`: progress counts archived steps; usage is the
    state's counters overlaid with the ledger's (`spend`: dollars, model calls, tokens,
    active time, which include what a crash left out of a checkpoint).
    """
    plan = thread["plan"]
    progress = dict(report_progress(plan, thread["archive"]))  # type: ignore[arg-type]
    raw = thread["usage"]
    usage: dict[str, Any] = {k: raw.get(k, 0) for k in USAGE_KEYS}
    usage["active_seconds"] = round(float(usage["active_seconds"]), 3)
    if spend is not None:
        usage.update(spend.usage())
    progress["eta_seconds"] = eta_seconds(progress, float(usage["active_seconds"]))
    step = next((s for s in plan if s["id"] == thread["current"]), None)
    max_usd = thread["limits"].get("max_usd")
    max_usd = float(max_usd) if isinstance(max_usd, int | float) else None
    return {
        "thread_id": thread_id,
        "status": thread["status"],
        "stop_reason": redact(thread["stop_reason"], MAX_ERROR_CHARS),
        "segment": thread["segment"],
        "progress": progress,
        "current_step": {"id": step["id"], "title": step["title"]} if step else None,
        "usage": usage,
        "limits": thread["limits"],
        "warnings": thread["warnings"],
        "checkpoint_id": checkpoint_id,
        "forecast": forecast(
            steps_done=progress["steps_done"],
            steps_total=progress["steps_total"],
            usage=usage,
            limits=thread["limits"],
            samples=spend.step_costs() if spend is not None else (),
            reserve_usd=final_reserve_usd(max_usd, thread["final_reserve_usd"]),
        ),
    }


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
