"""The side-effect journal: a tool call with an external effect runs at most once.

    begin(call)  → row `started`  (committed before the tool runs)
    finish(call) → row `done`, with the tool's result text

LangGraph checkpoints a tool task's result only after the task returns, so a crash between
the effect and that checkpoint re-runs the task on resume. The journal tells the re-run
what happened: no row → the call never started, run it; `done` → it ran, answer with the
recorded result without running it again; `started` → it may or may not have taken effect,
apply the tool's policy (retry with the same idempotency key, skip, or ask a person).

The row is keyed by (thread id, tool call id): the tool call id comes from the model's
answer, which is checkpointed before any tool task starts, so it is the same on every
re-run. The arguments are stored only as a hash (they may carry data the journal has no
business keeping); a re-run whose arguments hash differently (a person edited them) is a
new decision and runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

from enduro.storage import Database


def args_sha256(args: Any) -> str:
    """A stable hash of a call's arguments (keys sorted, so order does not matter)."""
    text = json.dumps(args, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(thread_id: str, tool_call_id: str) -> str:
    """The key a side-effecting tool passes to the external system (e.g. `Idempotency-Key`).

    The same on every re-run of the call, different for every call.
    """
    return f"{thread_id}:{tool_call_id}"


@dataclass(frozen=True)
class Entry:
    """A journal row."""

    state: Literal["started", "done"]
    args_sha256: str
    attempts: int
    result: str | None


class EffectJournal:
    """The `enduro_effects` table of one database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def lookup(self, thread_id: str, call_id: str) -> Entry | None:
        """The journal row of one tool call, or None if it never started."""
        row = await self.db.fetchone(
            "SELECT state, args_sha256, attempts, result FROM enduro_effects"
            " WHERE thread_id = %s AND tool_call_id = %s",
            (thread_id, call_id),
        )
        if row is None:
            return None
        return Entry(row["state"], row["args_sha256"], int(row["attempts"]), row["result"])

    async def begin(self, thread_id: str, call_id: str, tool: str, digest: str) -> None:
        """Record that the call is about to run (again: attempts grows, result cleared)."""
        await self.db.execute(
            "INSERT INTO enduro_effects (thread_id, tool_call_id, tool, args_sha256, state,"
            " attempts, started_at) VALUES (%s, %s, %s, %s, 'started', 1, %s)"
            " ON CONFLICT (thread_id, tool_call_id) DO UPDATE SET state = 'started',"
            " args_sha256 = excluded.args_sha256, attempts = enduro_effects.attempts + 1,"
            " result = NULL, finished_at = NULL, started_at = excluded.started_at",
            (thread_id, call_id, tool, digest, time.time()),
        )

    async def finish(self, thread_id: str, call_id: str, result: str) -> None:
        """Record the call's result: a re-run answers with it instead of running again."""
        await self.db.execute(
            "UPDATE enduro_effects SET state = 'done', result = %s, finished_at = %s"
            " WHERE thread_id = %s AND tool_call_id = %s",
            (result, time.time(), thread_id, call_id),
        )
