"""The Python side of people in the loop: tools declared with `requires_approval` and
`side_effect`, run in-process through `advance_thread`, on both engines."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool

from enduro.client import Client
from enduro.context import EnduroContext
from enduro.errors import NotWaiting
from enduro.hitl.effects import EffectJournal, args_sha256
from enduro.hitl.policy import requires_approval, side_effect
from enduro.runner import advance_thread, create_run
from enduro.storage import open_backend
from enduro.tools import default_tools
from fakellm import ScriptedLLM


def _counting_tool(effects: list[str | None], policy: Any) -> StructuredTool:
    async def charge(amount: int, config: RunnableConfig) -> str:
        """Charge the card."""
        effects.append((config.get("configurable") or {}).get("enduro_idempotency_key"))
        return f"charged {amount}"

    tool = StructuredTool.from_function(coroutine=charge, name="charge")
    return requires_approval(side_effect(tool, policy))


async def test_declared_approval_and_journal_in_process(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.steps = ["Pay"]
    llm_env.act_script = {"s1": [[("charge", {"amount": 5})]]}
    effects: list[str | None] = []
    tools = [*default_tools(), _counting_tool(effects, "skip")]
    async with open_backend(db_url) as backend:
        tid = await create_run(backend, "pay", EnduroContext(model="m"), str(uuid.uuid4()))
    outcome = await advance_thread(tid, database_url=db_url, tools=tools)
    assert (outcome.status, outcome.exit_code) == ("waiting", 6)
    [pending] = outcome.interrupts
    assert (pending.kind, pending.tool, pending.args) == ("approval", "charge", {"amount": 5})
    assert effects == []
    outcome = await advance_thread(
        tid, database_url=db_url, tools=tools, answers={pending.id: {"decision": "approve"}}
    )
    assert outcome.status == "completed"
    [call] = [m for m in llm_env.tool_results("s1")]
    assert effects == [f"{tid}:{call['tool_call_id']}"], "run once, with its idempotency key"
    async with open_backend(db_url) as backend:
        entry = await EffectJournal(backend.db).lookup(tid, call["tool_call_id"])
    assert entry is not None and entry.state == "done" and entry.result == "charged 5"
    assert entry.args_sha256 == args_sha256({"amount": 5})


async def test_client_answers_a_question_and_rejects_an_approval(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    llm_env.steps = ["Decide"]
    llm_env.act_script = {
        "s1": [
            [("ask_human", {"question": "Which file?"})],
            [("write_file", {"path": "out.txt", "content": "x"})],
        ]
    }
    async with Client(db_url) as client:
        created = await client.create(
            "decide", context=EnduroContext(model="m", approve=["write_file"])
        )
        tid = created.thread_id
        first = await client.resume(tid)
        assert (first.status, first.exit_code) == ("waiting", 6)
        [question] = await client.interrupts(tid)
        assert (question.kind, question.question) == ("question", "Which file?")
        with pytest.raises(NotWaiting, match="is a question"):
            await client.approve(tid)
        second = await client.answer(tid, "out.txt")
        assert second.status == "waiting"
        [approval] = await client.interrupts(tid)
        assert (approval.kind, approval.args) == ("approval", {"path": "out.txt", "content": "x"})
        status = await client.status(tid)
        assert status.status == "waiting" and status.exit_code == 6
        done = await client.reject(tid, reason="write nothing today")
        assert done.status == "completed"
        assert await client.interrupts(tid) == []
    results = [m["content"] for m in llm_env.tool_results("s1")]
    assert results[0] == "out.txt"
    assert "write nothing today" in results[1]


async def test_cancelling_a_waiting_thread(db_url: str, llm_env: ScriptedLLM) -> None:
    llm_env.steps = ["Write"]
    llm_env.act_script = {"s1": [[("write_file", {"path": "a.txt", "content": "x"})]]}
    async with Client(db_url) as client:
        created = await client.create("w", context=EnduroContext(model="m", approve=["*"]))
        assert (await client.resume(created.thread_id)).status == "waiting"
        result = await client.cancel(created.thread_id)
        assert result.action == "cancelled"
        status = await client.status(created.thread_id)
        assert (status.status, status.to_json()["interrupts"]) == ("cancelled", [])
