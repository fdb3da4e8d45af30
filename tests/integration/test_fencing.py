"""Fencing on both engines: once another process took a thread over (a newer lease epoch),
the former holder's checkpoint, ledger and outbox writes are refused, in the same
transaction as the write, and its heartbeat and release touch nothing."""

from __future__ import annotations

import uuid

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from enduro import threads
from enduro.budgets.ledger import Caps, Ledger
from enduro.context import EnduroContext
from enduro.runner import create_run
from enduro.storage.backend import open_backend
from enduro.storage.fencing import LeaseLost, current_lease
from enduro.webhooks import outbox


async def test_a_lost_lease_writes_nothing(db_url: str) -> None:
    async with open_backend(db_url) as backend:
        db = backend.db
        tid = await create_run(backend, "goal", EnduroContext(), f"t-{uuid.uuid4().hex[:8]}")
        lease = await threads.claim(db, tid, EnduroContext())
        assert lease is not None and lease.epoch == 1
        token = current_lease.set(lease)
        try:
            # Held: every write goes through.
            ledger = Ledger(db)
            caps = Caps()
            await ledger.reserve(
                thread_id=tid, node="act", model="m", usd_nano=1, tokens=1, caps=caps
            )
            await outbox.subscribe(db, tid, ["http://127.0.0.1:9/hooks"], None)
            assert await outbox.append(db, tid, "run.started", lambda *_: "{}") is not None
            saver = backend.saver_for(lease)
            config = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
            await saver.aput(config, empty_checkpoint(), {}, {})  # type: ignore[arg-type]

            # Another process takes the thread over (what `claim` does after a stale lease).
            await db.execute(
                "UPDATE enduro_threads SET owner = 'elsewhere:1', lease_epoch = lease_epoch + 1"
                " WHERE thread_id = %s",
                (tid,),
            )
            with pytest.raises(LeaseLost):
                await ledger.reserve(
                    thread_id=tid, node="act", model="m", usd_nano=1, tokens=1, caps=caps
                )
            with pytest.raises(LeaseLost):
                await outbox.append(db, tid, "step.started", lambda *_: "{}")
            if db.dialect == "postgres":
                with pytest.raises(LeaseLost):
                    await saver.aput(config, empty_checkpoint(), {}, {})  # type: ignore[arg-type]
            assert not await threads.heartbeat(db, tid, lease)
            assert not await threads.release(db, tid, "paused", "signal", lease)
        finally:
            current_lease.reset(token)
        spend_rows = await db.fetchall(
            "SELECT call_id FROM enduro_spend WHERE thread_id = %s", (tid,)
        )
        events = await db.fetchall(
            "SELECT seq FROM enduro_webhook_events WHERE thread_id = %s", (tid,)
        )
        row = await threads.get_thread(db, tid)
        assert len(spend_rows) == 1 and len(events) == 1
        assert row is not None and (row.owner, row.status) == ("elsewhere:1", "running")
        if db.dialect == "postgres":
            found = await db.fetchall(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = %s", (tid,)
            )
            assert len(found) == 1
