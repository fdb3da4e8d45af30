"""Reports and progress figures derived from a thread's state, with no model call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from enduro.records import FINISHED_STEP_STATUSES, Archive, PlanStep


def progress(plan: list[PlanStep], archive: Archive | None = None) -> dict[str, Any]:
    """Steps finished out of all, archived ones included: `{steps_done, steps_total, percent}`."""
    archived = archive["steps"] if archive else 0
    done = archived + sum(1 for s in plan if s["status"] in FINISHED_STEP_STATUSES)
    total = archived + len(plan)
    return {
        "steps_done": done,
        "steps_total": total,
        "percent": round(100 * done / total, 1) if total else 0.0,
    }


def render_report(
    *,
    goal: str,
    plan: list[PlanStep],
    status: str,
    stop_reason: str | None,
    usage: Mapping[str, Any],
    final_text: str | None = None,
    spend: Sequence[str] = (),
    archive: Archive | None = None,
) -> str:
    """The final or partial report: what was done, what remains, what it cost.

    spend: lines on spend by model and by node, from the ledger (budgets.report).
    """
    lines = [f"Goal: {goal}", f"Outcome: {status}" + (f" ({stop_reason})" if stop_reason else "")]
    if final_text:
        lines += ["", final_text.strip()]
    done = [s for s in plan if s["status"] in FINISHED_STEP_STATUSES]
    remaining = [s for s in plan if s["status"] in ("pending", "active")]
    archived = archive["steps"] if archive else 0
    lines += ["", f"Steps done ({archived + len(done)}/{archived + len(plan)}):"]
    if archived:
        lines.append(
            f"  - {archived} earlier steps ({archive['failed'] if archive else 0} failed): "
            "their results are in the workspace under .history/steps/"
        )
    for s in done:
        mark = "failed: " if s["status"] == "failed" else ""
        lines.append(f"  - [{s['id']}] {s['title']}: {mark}{s.get('summary') or '(no summary)'}")
    if remaining:
        lines += ["", f"Steps remaining ({len(remaining)}):"]
        lines += [f"  - [{s['id']}] {s['title']}" for s in remaining]
    lines += [
        "",
        "Usage: "
        + ", ".join(
            f"{k}={usage.get(k, 0)}"
            for k in (
                "usd",
                "llm_calls",
                "tool_calls",
                "iterations",
                "input_tokens",
                "output_tokens",
            )
        )
        + f", active_seconds={float(usage.get('active_seconds', 0)):.1f}",
    ]
    lines += spend
    return "\n".join(lines)
