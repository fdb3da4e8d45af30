"""Migration 4: the side-effect journal and the first-seen time of each interrupt.

Kept free of imports so that the migration list can load it without loading the tools.
"""

from __future__ import annotations

HITL_SCHEMA: list[str] = [
    # One row per side-effecting tool call: written (`started`) before the call runs and
    # completed (`done`, with the result) after it, so a resume can tell "never ran" from
    # "ran, outcome unknown" from "ran, result known".
    """CREATE TABLE IF NOT EXISTS enduro_effects (
        thread_id TEXT NOT NULL,
        tool_call_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        args_sha256 TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 1,
        result TEXT,
        started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        PRIMARY KEY (thread_id, tool_call_id)
    )""",
    # LangGraph re-raises a pending interrupt each time its task runs again, so the time it
    # was first raised is kept here: --approval-timeout counts from it.
    """CREATE TABLE IF NOT EXISTS enduro_interrupts (
        thread_id TEXT NOT NULL,
        interrupt_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        tool TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, interrupt_id)
    )""",
]
