"""Routers: pure functions of the state that name the next node."""

from __future__ import annotations

from typing import Literal

from langchain_core.messages import AIMessage
from langgraph.types import Send

from enduro.state import AgentState, ToolTask


def route_after_guard(state: AgentState) -> Literal["act", "finish"]:
    """The guard leaves `status` at `running` only when another iteration may start."""
    return "act" if state.get("status", "running") == "running" else "finish"


def route_after_act(state: AgentState) -> Literal["tools", "reflect"]:
    """Tool calls in act's last answer go to tools; a plain answer ends the step."""
    messages = state.get("messages") or []
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
        return "tools"
    return "reflect"


def dispatch_after_act(state: AgentState) -> list[Send] | Literal["reflect"]:
    """Fan tool calls out as one `tools` task each (LangGraph saves each task's writes as
    it finishes, so a crash re-runs only the calls that had not finished)."""
    if route_after_act(state) == "reflect":
        return "reflect"
    last = (state.get("messages") or [])[-1]
    assert isinstance(last, AIMessage)
    step = state.get("current")
    sends = [Send("tools", ToolTask(call=dict(call), step_id=step)) for call in last.tool_calls]
    for bad in last.invalid_tool_calls:
        sends.append(Send("tools", ToolTask(call={**bad, "invalid": True}, step_id=step)))
    return sends
