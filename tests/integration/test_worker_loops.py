"""The distributed seam: one process advancing threads under successive event loops (as a
worker that calls `asyncio.run(advance_thread(...))` per job does)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from enduro.checkpointing.backend import open_backend
from enduro.context import EnduroContext
from enduro.runner import advance_thread, create_run
from fakellm import ScriptedLLM


def test_successive_event_loops_share_nothing(llm_env: ScriptedLLM, tmp_path: Path) -> None:
    db = str(tmp_path / "w.sqlite")

    async def job() -> str:
        async with open_backend(db) as backend:
            tid = await create_run(backend, "g", EnduroContext(), str(uuid.uuid4()))
        return (await advance_thread(tid, database_url=db)).status

    # Each asyncio.run is a new loop; clients cached from a closed loop would fail here.
    assert [asyncio.run(job()) for _ in range(3)] == ["completed"] * 3
