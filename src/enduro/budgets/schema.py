"""Migration 2: the spend ledger and the run clock (see `enduro.budgets.ledger`).

Kept free of imports so that the migration list can load it without loading the budget code.
"""

from __future__ import annotations

LEDGER_SCHEMA: list[str] = [
    """CREATE TABLE IF NOT EXISTS enduro_spend (
        call_id TEXT PRIMARY KEY,
        thread_id TEXT NOT NULL,
        node TEXT NOT NULL,
        model TEXT NOT NULL,
        state TEXT NOT NULL,
        priced INTEGER NOT NULL DEFAULT 1,
        calls INTEGER NOT NULL DEFAULT 1,
        reserved_nusd BIGINT NOT NULL,
        reserved_tokens BIGINT NOT NULL,
        settled_nusd BIGINT,
        settled_tokens BIGINT,
        input_tokens BIGINT,
        cached_input_tokens BIGINT,
        output_tokens BIGINT,
        reasoning_tokens BIGINT,
        detail TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        settled_at DOUBLE PRECISION
    )""",
    "CREATE INDEX IF NOT EXISTS enduro_spend_thread ON enduro_spend (thread_id, created_at)",
    """CREATE TABLE IF NOT EXISTS enduro_clock (
        thread_id TEXT PRIMARY KEY,
        active_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
        not_before DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL
    )""",
]
