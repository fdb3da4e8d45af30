"""tools: run one tool call (each call is its own task, fanned out with Send).

A call may first wait for a person (approval) and, when its tool is side-effecting, goes
through the effect journal (`enduro.hitl.gate`). A LangGraph interrupt raised on the way
(by the gate or by a tool such as ask_human) propagates: it is how the thread stops to wait.
Any other exception a tool raises becomes a tool error the model sees.

Says tool.called for every named call that ends, refused or failed ones included (`ok`
false): the tool's name and wall time only, never its arguments or output.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime

from enduro.budgets.tooling import ToolPermit, tool_permit
from enduro.context import EnduroContext
from enduro.events import ToolCalled, event, say
from enduro.hitl.effects import EffectJournal
from enduro.hitl.gate import gated_call
from enduro.hitl.policy import policy_for
from enduro.nodes.services import Services, context_of, thread_id_of, workspace_root
from enduro.state import ToolTask
from enduro.tools import write_large_output

log = logging.getLogger(__name__)


def make_tools_node(services: Services) -> Any:
    """The tools node: one tool call (a `ToolTask` from act's router), then tool.called.

    The call runs within the budget's permit (count and timeout), behind the approval
    gate and effect journal of its tool's policy.
    """
    by_name = {t.name: t for t in services.tools}

    async def journal() -> EffectJournal:
        return EffectJournal((await services.budget.ledger()).db)

    async def tools(
        task: ToolTask, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        started = time.monotonic()
        update = await run_call(task, context_of(runtime), config)
        name = str(task["call"].get("name") or "")
        if name:
            await _say_tool_called(config, task["call"], name, update, started)
        return update

    async def run_call(
        task: ToolTask, context: EnduroContext, config: RunnableConfig
    ) -> dict[str, Any]:
        call = task["call"]
        call_id = str(call.get("id") or "call")
        name = str(call.get("name") or "")
        thread_id = thread_id_of(config)
        root = workspace_root(context, config)
        # Off the event loop: `langgraph dev` rejects blocking calls in async nodes.
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        permit = await tool_permit(services.budget, context, thread_id, task)
        if permit.refusal is not None:
            message = ToolMessage(permit.refusal, tool_call_id=call_id, name=name, status="error")
            return {"messages": [message], "usage": {"tool_calls": 0}}
        tool = by_name.get(name)
        problem = _call_problem(call, name, tool, by_name)
        if problem is not None:
            message = ToolMessage(problem, tool_call_id=call_id, name=name, status="error")
        else:
            assert tool is not None

            async def run(args: dict[str, Any], key: str | None) -> ToolMessage:
                return await _invoke(tool, call_id, args, key, permit, config, context, root)

            message = await gated_call(
                policy=policy_for(tool, name, context),
                name=name,
                call_id=call_id,
                args=dict(call.get("args") or {}),  # type: ignore[call-overload]
                thread_id=thread_id,
                journal=journal,
                run=run,
            )
        await _offload_large(message, context, root, call_id)
        return {"messages": [message], "usage": {"tool_calls": 1}}

    return tools


async def _say_tool_called(
    config: RunnableConfig,
    call: dict[str, object],
    name: str,
    update: dict[str, Any],
    started: float,
) -> None:
    """Say tool.called: the name, wall time and outcome of one call.

    A tool task sees only its call, so it says nothing of the thread (listeners show the
    thread as last said).
    """
    failed = any(getattr(m, "status", None) == "error" for m in update.get("messages") or [])
    tool: ToolCalled = {
        "name": name,
        "duration_ms": round((time.monotonic() - started) * 1000),
        "ok": not failed,
    }
    call_id = str(call.get("id") or "")
    dedupe = f"tool.called:{call_id}" if call_id else None
    await say(config, event("tool.called", thread_id_of(config), None, {"tool": tool}, dedupe))


def _call_problem(
    call: dict[str, object], name: str, tool: BaseTool | None, by_name: dict[str, BaseTool]
) -> str | None:
    if call.get("invalid"):
        return (
            f"Error: the arguments of your {name!r} call are not valid JSON "
            f"({call.get('error') or 'parse error'}). Call the tool again with valid JSON."
        )
    if tool is None:
        return f"Error: no tool named {name!r}. Available tools: {', '.join(by_name)}."
    return None


async def _invoke(
    tool: BaseTool,
    call_id: str,
    args: dict[str, Any],
    key: str | None,
    permit: ToolPermit,
    config: RunnableConfig,
    context: EnduroContext,
    root: Path,
) -> ToolMessage:
    name = tool.name
    tool_config: RunnableConfig = {
        # The node's own configurable goes along: a tool that calls interrupt() (ask_human)
        # needs the task's scratchpad, and LangChain replaces `configurable` wholesale.
        "configurable": {
            **(config.get("configurable") or {}),
            "enduro_workspace": str(root),
            "enduro_allow_private": context.allow_private_urls,
            "enduro_post_hosts": list(context.post_hosts),
            "enduro_tool_call_id": call_id,
            "enduro_idempotency_key": key,
        },
        "callbacks": config.get("callbacks"),
    }
    deadline = asyncio.timeout(permit.timeout)
    try:
        async with deadline:
            result = await tool.ainvoke(
                {"name": name, "args": args, "id": call_id, "type": "tool_call"},
                config=tool_config,
            )
    except GraphBubbleUp:
        raise  # an interrupt: the thread stops to wait for a person
    except Exception as exc:  # a broken tool must not kill an hours-long run
        log.warning("tool %s raised %s: %s", name, type(exc).__name__, exc)
        error = f"Error: {type(exc).__name__}: {exc}"
        if deadline.expired():  # the budget's timeout, not one of the tool's own
            error = (
                f"Error: {name} did not finish within {permit.timeout:.0f}s "
                f"(limited by {permit.timeout_cause})."
            )
        return ToolMessage(error, tool_call_id=call_id, name=name, status="error")
    if isinstance(result, ToolMessage):
        return result
    return ToolMessage(str(result), tool_call_id=call_id, name=name)


async def _offload_large(
    message: ToolMessage, context: EnduroContext, root: Path, call_id: str
) -> None:
    text = message.content if isinstance(message.content, str) else str(message.content)
    if len(text) > context.large_output_chars:
        # Big outputs would be copied into every later checkpoint; keep a reference.
        path = await asyncio.to_thread(write_large_output, root, call_id, text)
        message.content = (
            text[:1000] + f"\n…[{len(text)} characters in all; the full output is in the "
            f"workspace file {path!r}, read it with read_file]"
        )
