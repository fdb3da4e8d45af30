"""What stands between a tool call and its execution.

A person's approval, and the side-effect journal that keeps an external effect from happening twice.

Order inside one `tools` task (LangGraph runs the whole task again after a resume, so every
step here must give the same answer the second time):
1. approval (when the policy asks for it): `interrupt()`; a resume returns the decision.
2. the journal (when the tool is side-effecting): a call recorded `done` answers with its
   recorded result; one recorded `started` (a crash landed between the effect and its
   result) follows the tool's policy; otherwise the call is recorded `started`, runs with
   its idempotency key, and is recorded `done` with its result.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import ToolMessage

from enduro.hitl.effects import EffectJournal, args_sha256, idempotency_key
from enduro.hitl.interrupts import (
    Decision,
    approval_value,
    ask,
    rejection_text,
    unknown_outcome_value,
)
from enduro.hitl.policy import EffectPolicy, ToolPolicy

Run = Callable[[dict[str, Any], str | None], Awaitable[ToolMessage]]
"""Runs the tool with these arguments and idempotency key (None: not side-effecting)."""


def _error(text: str, call_id: str, name: str) -> ToolMessage:
    return ToolMessage(text, tool_call_id=call_id, name=name, status="error")


async def gated_call(
    *,
    policy: ToolPolicy,
    name: str,
    call_id: str,
    args: dict[str, Any],
    thread_id: str,
    journal: Callable[[], Awaitable[EffectJournal]],
    run: Run,
) -> ToolMessage:
    """The call's result message after approval and exactly-once handling.

    Raises:
        GraphInterrupt: the call waits for a person (approval or unknown outcome).
    """
    if policy.approval:
        decision = ask(approval_value(name, args, call_id))
        if decision.action == "edit" and decision.args is not None:
            args = decision.args
        elif decision.action != "approve":
            return _error(rejection_text(name, decision.text), call_id, name)
    if policy.side_effect is None:
        return await run(args, None)
    return await _exactly_once(
        policy.side_effect, await journal(), thread_id, name, call_id, args, run
    )


async def _exactly_once(
    policy: EffectPolicy,
    journal: EffectJournal,
    thread_id: str,
    name: str,
    call_id: str,
    args: dict[str, Any],
    run: Run,
) -> ToolMessage:
    digest = args_sha256(args)
    entry = await journal.lookup(thread_id, call_id)
    if entry is not None and entry.args_sha256 == digest:
        if entry.state == "done":
            # It ran and its result was recorded; only the checkpoint was lost.
            return ToolMessage(entry.result or "", tool_call_id=call_id, name=name)
        settled = await _unknown_outcome(policy, name, call_id, args)
        if settled is not None:
            await journal.finish(thread_id, call_id, str(settled.content))
            return settled
    await journal.begin(thread_id, call_id, name, digest)
    message = await run(args, idempotency_key(thread_id, call_id))
    await journal.finish(thread_id, call_id, str(message.content))
    return message


async def _unknown_outcome(
    policy: EffectPolicy, name: str, call_id: str, args: dict[str, Any]
) -> ToolMessage | None:
    """The answer for a call that started and never recorded a result.

    None means run it again (policy `retry`, or a person said so).
    """
    if policy == "retry":
        return None
    if policy == "skip":
        return _error(
            f"Outcome unknown: this {name} call started before the process stopped and its "
            "result was never recorded, so it may or may not have taken effect. It was not "
            "run again. Check its effect before doing anything that depends on it.",
            call_id,
            name,
        )
    decision: Decision = ask(unknown_outcome_value(name, args, call_id))
    if decision.action in ("approve", "edit"):
        return None
    if decision.action == "answer":
        return ToolMessage(
            f"(Outcome reported by a person) {decision.text}", tool_call_id=call_id, name=name
        )
    return _error(
        f"Outcome unknown and not run again: {decision.text or 'a person chose to leave it'}.",
        call_id,
        name,
    )
