"""Keep the plan bounded: finished steps beyond a small window move out of state.

They go to the thread's workspace (`.history/steps/<id>.json`), and state keeps only their counts.

Without this the plan (and every checkpoint, and every act prompt that renders it) would
grow with each step of a run that replans for days.
"""

from __future__ import annotations

import json
from pathlib import Path

from enduro.records import FINISHED_STEP_STATUSES, Archive, PlanStep

KEEP_FINISHED = 8
HISTORY_DIR = ".history/steps"


def compact(
    plan: list[PlanStep], keep: int = KEEP_FINISHED
) -> tuple[list[PlanStep], list[PlanStep]]:
    """Split off the oldest finished steps so at most `keep` remain; order is preserved."""
    finished = [i for i, s in enumerate(plan) if s["status"] in FINISHED_STEP_STATUSES]
    drop = set(finished[: max(0, len(finished) - keep)])
    kept = [s for i, s in enumerate(plan) if i not in drop]
    moved = [s for i, s in enumerate(plan) if i in drop]
    return kept, moved


def add_to_archive(archive: Archive | None, moved: list[PlanStep]) -> Archive:
    """The archive counts after moving `moved` out of the plan: steps, and how many had failed."""
    old = archive or {"steps": 0, "failed": 0}
    return {
        "steps": old["steps"] + len(moved),
        "failed": old["failed"] + sum(1 for s in moved if s["status"] == "failed"),
    }


def write_history(root: Path, moved: list[PlanStep]) -> None:
    """Write each moved step to `.history/steps/<id>.json` under `root`, one file per step.

    Each file is written whole: a reflect replayed after a crash rewrites the same files instead of
    appending duplicates.
    """
    folder = root / HISTORY_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for step in moved:
        tmp = folder / f".{step['id']}.json.tmp"
        tmp.write_text(json.dumps(step, ensure_ascii=False), encoding="utf-8")
        tmp.replace(folder / f"{step['id']}.json")
