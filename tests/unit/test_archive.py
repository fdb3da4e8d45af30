"""The plan stays bounded: old finished steps move to the workspace."""

from __future__ import annotations

import json
from pathlib import Path

from enduro.nodes.archive import add_to_archive, compact, write_history
from enduro.nodes.prompts import render_plan
from enduro.records import Archive
from enduro.report import progress, render_report
from enduro.state import PlanStep


def _step(i: int, status: str) -> PlanStep:
    return PlanStep(
        id=f"s{i}",
        title=f"Step {i}",
        detail="",
        status=status,  # type: ignore[typeddict-item]
        summary=f"result {i}",
        attempts=0,
    )


def test_compact_keeps_the_newest_finished_steps_and_all_open_ones() -> None:
    plan = [_step(i, "done") for i in range(1, 11)] + [_step(11, "active"), _step(12, "pending")]
    plan[2]["status"] = "failed"
    kept, moved = compact(plan, keep=4)
    assert [s["id"] for s in moved] == ["s1", "s2", "s3", "s4", "s5", "s6"]
    assert [s["id"] for s in kept] == ["s7", "s8", "s9", "s10", "s11", "s12"]
    archive = add_to_archive({"steps": 2, "failed": 0}, moved)
    assert archive == {"steps": 8, "failed": 1}
    assert compact(kept, keep=4) == (kept, [])


def test_progress_report_and_prompt_count_archived_steps(tmp_path: Path) -> None:
    plan = [_step(7, "done"), _step(8, "active")]
    archive: Archive = {"steps": 6, "failed": 1}
    assert progress(plan, archive) == {"steps_done": 7, "steps_total": 8, "percent": 87.5}
    report = render_report(
        goal="g", plan=plan, status="paused", stop_reason="signal", usage={}, archive=archive
    )
    assert "Steps done (7/8)" in report and "6 earlier steps (1 failed)" in report
    assert render_plan(plan, archive).startswith("(6 earlier steps finished")


def test_history_files_are_rewritten_not_appended(tmp_path: Path) -> None:
    moved = [_step(1, "done"), _step(2, "failed")]
    write_history(tmp_path, moved)
    write_history(tmp_path, moved)  # a reflect replayed after a crash
    files = sorted(p.name for p in (tmp_path / ".history" / "steps").iterdir())
    assert files == ["s1.json", "s2.json"]
    assert json.loads((tmp_path / ".history/steps/s2.json").read_text())["status"] == "failed"
