"""tools: run one tool call (each call is its own task, fanned out with Send)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from enduro.budgets.tooling import tool_permit
from enduro.context import EnduroContext
from enduro.nodes.services import Services, context_of, thread_id_of, workspace_root
from enduro.state import ToolTask
from enduro.tools import write_large_output

log = logging.getLogger(__name__)


def make_tools_node(services: Services) -> Any:
    by_name = {t.name: t for t in services.tools}

    async def tools(
        task: ToolTask, runtime: Runtime[EnduroContext], config: RunnableConfig
    ) -> dict[str, Any]:
        context = context_of(runtime)
        call = task["call"]
        call_id = str(call.get("id") or "call")
        name = str(call.get("name") or "")
        root = workspace_root(context, config)
        # Off the event loop: `langgraph dev` rejects blocking calls in async nodes.
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        tool = by_name.get(name)
        permit = await tool_permit(services.budget, context, thread_id_of(config), task)
        if permit.refusal is not None:
            message = ToolMessage(permit.refusal, tool_call_id=call_id, name=name, status="error")
            return {"messages": [message], "usage": {"tool_calls": 0}}
        if call.get("invalid"):
            content = (
                f"Error: the arguments of your {name!r} call are not valid JSON "
                f"({call.get('error') or 'parse error'}). Call the tool again with valid JSON."
            )
            message = ToolMessage(content, tool_call_id=call_id, name=name, status="error")
        elif tool is None:
            content = f"Error: no tool named {name!r}. Available tools: {', '.join(by_name)}."
            message = ToolMessage(content, tool_call_id=call_id, name=name, status="error")
        else:
            tool_config: RunnableConfig = {
                "configurable": {
                    "enduro_workspace": str(root),
                    "enduro_allow_private": context.allow_private_urls,
                },
                "callbacks": config.get("callbacks"),
            }
            deadline = asyncio.timeout(permit.timeout)
            try:
                async with deadline:
                    result = await tool.ainvoke(
                        {
                            "name": name,
                            "args": call.get("args") or {},
                            "id": call_id,
                            "type": "tool_call",
                        },
                        config=tool_config,
                    )
            except Exception as exc:  # a broken tool must not kill an hours-long run
                log.warning("tool %s raised %s: %s", name, type(exc).__name__, exc)
                error = f"Error: {type(exc).__name__}: {exc}"
                if deadline.expired():  # the budget's timeout, not one of the tool's own
                    error = (
                        f"Error: {name} did not finish within {permit.timeout:.0f}s "
                        f"(limited by {permit.timeout_cause})."
                    )
                result = ToolMessage(error, tool_call_id=call_id, name=name, status="error")
            message = (
                result
                if isinstance(result, ToolMessage)
                else ToolMessage(str(result), tool_call_id=call_id, name=name)
            )
        text = message.content if isinstance(message.content, str) else str(message.content)
        if len(text) > context.large_output_chars:
            # Big outputs would be copied into every later checkpoint; keep a reference.
            path = await asyncio.to_thread(write_large_output, root, call_id, text)
            message.content = (
                text[:1000] + f"\n…[{len(text)} characters in all; the full output is in the "
                f"workspace file {path!r}, read it with read_file]"
            )
        return {"messages": [message], "usage": {"tool_calls": 1}}

    return tools
