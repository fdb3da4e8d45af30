"""Events of real runs (scripted model, real receivers), through the runner and through the
module-level graph that `langgraph dev` serves, on both engines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema_rs

from enduro.context import ContextOverrides, EnduroContext
from enduro.runner import advance_with_backend, create_run
from enduro.storage import open_backend
from enduro.webhooks import outbox
from enduro.webhooks.config import WebhookConfig, new_secret
from enduro.webhooks.session import WebhookSession
from fakellm import ScriptedLLM
from receiver import Hit, Receiver, hanging_receiver

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "webhook-event.schema.json").read_text())


def _events(hits: list[Hit]) -> list[dict[str, Any]]:
    return [h.event for h in hits]


async def _run(
    db_url: str,
    config: WebhookConfig,
    *,
    thread_id: str | None = None,
    **limits: Any,
) -> tuple[str, str]:
    async with open_backend(db_url) as backend:
        tid = await create_run(
            backend, "Research tidal pools", EnduroContext(model="fake", **limits), thread_id
        )
        async with WebhookSession(backend.db, config) as session:
            outcome = await advance_with_backend(backend, tid, webhooks=session)
        return tid, outcome.status


async def test_a_run_sends_the_documented_events_in_order(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.tool_use = True
    secret = new_secret()
    with Receiver(secret=secret) as rec:
        config = WebhookConfig(urls=(rec.url,), secret=secret, heartbeat_seconds=60)
        tid, status = await _run(db_url, config)
        assert status == "completed"
        events = _events(rec.accepted())
    types = [e["type"] for e in events]
    assert types == [
        "run.started",
        "plan.updated",
        *(t for _ in range(3) for t in ("step.started", "tool.called", "step.completed")),
        "run.completed",
    ]
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(h.verified for h in rec.hits)
    validator = jsonschema_rs.validator_for(SCHEMA)
    for event in events:
        validator.validate(event)
        assert event["data"]["thread_id"] == tid and event["data"]["segment"] == 1
        assert event["data"]["id"] == rec.accepted()[events.index(event)].headers["webhook-id"]
    assert [e["data"]["step"]["id"] for e in events if e["type"] == "step.completed"] == [
        "s1",
        "s2",
        "s3",
    ]
    assert events[1]["data"]["plan"][0] == {
        "id": "s1",
        "title": "Survey the topic",
        "status": "active",
    }
    tool = next(e["data"]["tool"] for e in events if e["type"] == "tool.called")
    assert tool["name"] == "write_file" and tool["ok"] is True and tool["duration_ms"] >= 0
    last = events[-1]["data"]
    assert last["status"] == "completed" and last["progress"]["percent"] == 100.0
    assert last["progress"]["eta_seconds"] == 0 and last["usage"]["tool_calls"] == 3
    assert last["checkpoint_id"]
    # Every event carries the forecast; once a step is done it projects from the ledger.
    assert all("forecast" in e["data"] for e in events)
    step_done = next(e["data"] for e in events if e["type"] == "step.completed")
    assert step_done["forecast"]["basis"] == "ledger"
    assert step_done["forecast"]["steps_done"] == 1 and step_done["forecast"]["steps_total"] == 3
    assert last["forecast"]["usd"]["projected"] == last["forecast"]["usd"]["spent"]
    # Never tool arguments (the scripted write_file content), the goal or the secret.
    raw = b"".join(h.body for h in rec.hits)
    for private in (b"notes for", b"notes/s1.md", b"Research tidal pools", secret.encode()):
        assert private not in raw
    # Nor the secret anywhere in the database: outbox, endpoints, threads, checkpoints.
    async with open_backend(db_url) as backend:
        for table in (
            "enduro_webhook_events",
            "enduro_webhook_endpoints",
            "enduro_webhook_deliveries",
            "enduro_threads",
            "checkpoints",
            "writes" if backend.db.dialect == "sqlite" else "checkpoint_writes",
        ):
            rows = await backend.db.fetchall(f"SELECT * FROM {table}")
            assert rows, table
            assert secret.removeprefix("whsec_") not in repr(rows), table


async def test_heartbeats_while_a_model_call_is_slow(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.latency = 0.5
    llm_env.steps = ["Only step"]
    with Receiver() as rec:
        config = WebhookConfig(urls=(rec.url,), heartbeat_seconds=0.15)
        _, status = await _run(db_url, config)
        assert status == "completed"
        beats = [e for e in _events(rec.accepted()) if e["type"] == "run.heartbeat"]
    assert len(beats) >= 4
    nodes = {b["data"]["in_flight"]["node"] for b in beats}
    assert {"plan", "act", "reflect"} <= nodes
    assert all(b["data"]["in_flight"]["seconds"] >= 0.1 for b in beats)


async def test_budget_warnings_then_budget_exhausted_then_resumed(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    with Receiver() as rec:
        config = WebhookConfig(urls=(rec.url,), heartbeat_seconds=60)
        tid, status = await _run(db_url, config, max_iterations=2)
        assert status == "budget_exhausted"
        # A resume in a process that has no URL configured still reaches the endpoint
        # recorded for the thread.
        async with (
            open_backend(db_url) as backend,
            WebhookSession(backend.db, WebhookConfig()) as session,
        ):
            outcome = await advance_with_backend(
                backend, tid, overrides=ContextOverrides(max_iterations=10), webhooks=session
            )
        assert outcome.status == "completed"
        events = _events(rec.accepted())
    types = [e["type"] for e in events]
    warnings = [e["data"]["warning"]["code"] for e in events if e["type"] == "budget.warning"]
    assert warnings[:2] == ["max_iterations:50", "max_iterations:80"]
    exhausted = types.index("run.budget_exhausted")
    assert events[exhausted]["data"]["stop_reason"] == "max_iterations"
    assert types[exhausted + 1] == "run.resumed"
    resumed = events[exhausted + 1]["data"]
    assert resumed["resumed_from"] == {
        "status": "budget_exhausted",
        "stop_reason": "max_iterations",
    }
    assert resumed["segment"] == 2 and resumed["limits"]["max_iterations"] == 10
    assert types[-1] == "run.completed"
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_no_endpoint_writes_nothing(db_url: str, llm_env: ScriptedLLM) -> None:
    tid, status = await _run(db_url, WebhookConfig())
    assert status == "completed"
    async with open_backend(db_url) as backend:
        rows = await backend.db.fetchall("SELECT seq FROM enduro_webhook_events")
        assert rows == [] and await outbox.endpoints(backend.db, tid) == []


async def test_a_hanging_receiver_does_not_slow_the_steps(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.latency = 0.05
    llm_env.steps = [f"Step {i}" for i in range(6)]

    async def timed(config: WebhookConfig) -> float:
        async with open_backend(db_url) as backend:
            tid = await create_run(backend, "g", EnduroContext(model="fake"))
            async with WebhookSession(backend.db, config) as session:
                started = time.perf_counter()
                outcome = await advance_with_backend(backend, tid, webhooks=session)
                elapsed = time.perf_counter() - started
            assert outcome.status == "completed"
            return elapsed

    # Not a timing comparison (bench/webhooks.py measures the cost): the receiver never
    # answers and each delivery attempt may wait up to 60 s, so a run that ends sooner, with
    # deliveries in flight, did not wait for any of them.
    attempt_timeout = 60.0
    with hanging_receiver() as stuck:
        hung = WebhookConfig(
            urls=(stuck.url,),
            timeout_seconds=attempt_timeout,
            flush_seconds=0.1,
            heartbeat_seconds=0.05,
        )
        with_hang = await timed(hung)
        assert stuck.hits, "the receiver was never called"
    assert with_hang < attempt_timeout, with_hang


_DEV_SCRIPT = """
import asyncio, sys
from enduro.context import EnduroContext
from enduro.graph import graph

async def main() -> None:
    emitter = graph.config["callbacks"][0].emitter
    try:
        out = await graph.ainvoke(
            {"goal": "g"}, {"configurable": {"thread_id": sys.argv[1]}},
            context=EnduroContext(model="fake"),
        )
        print(out["status"])
    finally:
        await emitter.aclose()

asyncio.run(main())
"""


def test_module_level_graph_sends_events_from_env(
    db_url: str, llm_env: ScriptedLLM, tmp_path: Path
) -> None:
    """What `langgraph dev` serves: the module-level graph, configured only from the env,
    in a process of its own (no runner, no checkpointer of enduro's)."""
    secret = new_secret()
    tid = str(uuid.uuid4())
    with Receiver(secret=secret) as rec:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ENDURO_", "LANGSMITH_", "LANGCHAIN_"))
        }
        env.update(
            ENDURO_WEBHOOK_URL=rec.url,
            ENDURO_WEBHOOK_SECRET=secret,
            ENDURO_DATABASE_URL=db_url,
            ENDURO_WORKSPACE=str(tmp_path / "ws"),
        )
        done = subprocess.run(
            [sys.executable, "-c", _DEV_SCRIPT, tid],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.strip() == "completed", done.stderr
        events = _events(rec.accepted())
    types = [e["type"] for e in events]
    assert types[0] == "run.started" and types[-1] == "run.completed"
    assert types.count("step.started") == types.count("step.completed") == 3
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(h.verified for h in rec.hits)
    assert {e["data"]["segment"] for e in events} == {None}
    assert secret not in done.stderr
