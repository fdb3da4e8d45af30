"""enduro: durable, budgeted, observable LangGraph agents for runs of hours or days."""

from enduro.context import EnduroContext
from enduro.graph import build_graph
from enduro.state import AgentState

__all__ = ["AgentState", "EnduroContext", "build_graph"]
