"""The status JSON of DESIGN.md, built from the thread row and the latest checkpoint."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from enduro.budgets.limits import final_reserve_usd
from enduro.budgets.report import SpendView
from enduro.context import EnduroContext
from enduro.forecast import forecast
from enduro.hitl.interrupts import Pending
from enduro.hitl.waiting import expiry
from enduro.records import USAGE_KEYS
from enduro.report import progress, render_report
from enduro.storage import Backend
from enduro.threads import ThreadRow


async def checkpoint_values(backend: Backend, thread_id: str) -> tuple[dict[str, Any], str | None]:
    """Channel values of the thread's latest checkpoint, and its id."""
    found = await backend.saver.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    )
    if found is None:
        return {}, None
    values = dict(found.checkpoint["channel_values"])
    values["__checkpoint_ts"] = datetime.fromisoformat(found.checkpoint["ts"]).timestamp()
    return values, found.checkpoint["id"]


_TERMINAL = ("completed", "budget_exhausted", "cancelled", "failed")


def build_status(
    row: ThreadRow,
    values: dict[str, Any],
    checkpoint_id: str | None,
    spend: SpendView | None = None,
    interrupts: Sequence[Pending] | None = None,
) -> dict[str, Any]:
    """Build the status JSON of a thread (the status contract).

    spend: the thread's ledger (`budgets.report.load_spend`); dollars, model calls, tokens and
    active time then come from it, so they include what a crash left out of the checkpoint. Without
    it they come from the checkpoint's counters.

    interrupts: the thread's pending interrupts (`hitl.waiting.thread_interrupts`); a thread not
    running with any pending is `waiting`, wherever it stopped (CLI, Studio). None: not
    looked up, the row's status stands.
    """
    status, stop_reason = row.effective_status()
    if interrupts and status in ("waiting", "paused"):
        # Paused too: a thread that stopped in Studio or the SDK has a row that never said
        # `waiting`. A cancelled one stays cancelled, whatever it was waiting for.
        status, stop_reason = "waiting", None
    elif status == "waiting" and interrupts is not None:
        # Answered elsewhere (Studio, the SDK) and not finished: continue with resume.
        status, stop_reason = "paused", None
    written = float(values.get("__checkpoint_ts") or 0)
    if status != "running" and values.get("status") in _TERMINAL and written > row.updated_at:
        # Continued elsewhere (langgraph dev, Studio) after the CLI last touched the row: the
        # checkpoint is the newer truth.
        status, stop_reason = values["status"], values.get("stop_reason")
    plan = values.get("plan") or []
    raw_usage = values.get("usage") or {}
    usage: dict[str, Any] = {k: raw_usage.get(k, 0) for k in USAGE_KEYS}
    usage["active_seconds"] = round(float(usage["active_seconds"]), 3)
    if spend is not None:
        usage.update(spend.usage())
    report = values.get("report")
    if report is None and plan and status != "running":
        # A paused, crashed or cancelled thread has no finish report: show partial results.
        report = render_report(
            goal=row.goal,
            plan=plan,
            status=status,
            stop_reason=stop_reason,
            usage=usage,
            spend=spend.report_lines() if spend is not None else (),
            archive=values.get("archive"),
        )
    steps = progress(plan, values.get("archive"))
    limits = row.context.limits()
    return {
        "thread_id": row.thread_id,
        "name": row.name,
        "goal": row.goal,
        "status": status,
        "stop_reason": stop_reason,
        "resumable": status in ("paused", "budget_exhausted", "cancelled", "failed"),
        "plan": [{"id": s["id"], "title": s["title"], "status": s["status"]} for s in plan],
        "current_step": values.get("current"),
        "progress": steps,
        "usage": usage,
        "limits": limits,
        "warnings": values.get("warnings") or [],
        "budget": values.get("budget") or {},
        "report": report,
        # Only a waiting thread waits: a cancelled one's leftover interrupts are not shown.
        "interrupts": [
            _interrupt(p, row.context.approval_timeout_seconds)
            for p in (interrupts or () if status == "waiting" else ())
        ],
        "checkpoint_id": checkpoint_id,
        "segments": row.segments,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(max(row.updated_at, row.heartbeat_at or 0)),
        "forecast": forecast(
            steps_done=steps["steps_done"],
            steps_total=steps["steps_total"],
            usage=usage,
            limits=limits,
            samples=spend.step_costs() if spend is not None else (),
            reserve_usd=final_reserve_usd(row.context.max_usd, row.context.final_reserve_usd),
        ),
    }


def offline_status(
    thread_id: str, row: ThreadRow | None, status: str, stop_reason: str | None
) -> dict[str, Any]:
    """The status JSON of a thread whose database cannot be read right now.

    `status` and `stop_reason` are as this process ended the run, the rest from `row` (read when the
    run started; None: unknown), with empty plan, usage and report.
    """
    now = time.time()
    if row is None:
        row = ThreadRow(
            thread_id, "", status, stop_reason, EnduroContext(), now, now, None, None, False, 0
        )
    row = dataclasses.replace(
        row, status=status, stop_reason=stop_reason, owner=None, heartbeat_at=None, updated_at=now
    )
    return build_status(row, {}, None)


def _interrupt(item: Pending, timeout: float | None) -> dict[str, Any]:
    out = item.to_dict()
    due = expiry(item, timeout)
    out["expires_at"] = _iso(due) if due is not None else None
    return out


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts or time.time(), tz=UTC).isoformat()
