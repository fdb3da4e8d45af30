"""Routers: pure functions of the state that name the next node."""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage
from langgraph.types import Send

from enduro.state import AgentState, ToolTask


def route_after_guard(state: AgentState) -> Literal["act", "finish"]:
    """The guard leaves `status` at `running` only when another iteration may start."""
    return "act" if state.get("status", "running") == "running" else "finish"


def route_after_act(state: AgentState) -> Literal["tools", "reflect", "finish"]:
    """Where act's answer goes: tool calls to tools, a plain answer to reflect.

    A refused model call (act set a stop status instead of answering) goes to finish.
    """
    if state.get("status", "running") != "running":
        return "finish"
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
        return "tools"
    return "reflect"


def dispatch_after_act(state: AgentState) -> list[Send] | Literal["reflect", "finish"]:
    """Fan tool calls out as one `tools` task each.

    LangGraph saves each task's writes as it finishes, so a crash re-runs only the calls that had
    not finished. Each task knows its place in the batch, so the tools node can refuse the calls
    past max_tool_calls.
    """
    route = route_after_act(state)
    if route != "tools":
        return route
    last = (state.get("messages") or [])[-1]
    assert isinstance(last, AIMessage)
    step = state.get("current")
    before = int((state.get("usage") or {}).get("tool_calls", 0))
    calls = [dict(call) for call in last.tool_calls]
    calls += [{**bad, "invalid": True} for bad in last.invalid_tool_calls]
    return [
        Send("tools", ToolTask(call=call, step_id=step, index=i, tool_calls_before=before))
        for i, call in enumerate(calls)
    ]
