"""The enduro graph: plan → guard → act ⇄ tools → reflect → guard … → finish.

`build_graph(...)` is the factory; the module-level `graph` (for langgraph.json) has no
checkpointer of its own, so `langgraph dev` supplies one (enduro's, via checkpointer.path).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from enduro.context import EnduroContext
from enduro.nodes.act import make_act_node
from enduro.nodes.finish import make_finish_node
from enduro.nodes.guard import make_guard_node
from enduro.nodes.llm import MalformedAnswer, ModelFactory, openai_model_factory
from enduro.nodes.plan import make_plan_node
from enduro.nodes.reflect import make_reflect_node
from enduro.nodes.routers import dispatch_after_act, route_after_guard
from enduro.nodes.services import CancelCheck, Services, _never_cancelled
from enduro.nodes.tools import make_tools_node
from enduro.state import AgentState, ToolTask
from enduro.tools import default_tools


def retryable(exc: BaseException) -> bool:
    """Transient provider failures and malformed answers are retried; a bad key, an
    exhausted quota or a too-long context would fail the same way again."""
    if isinstance(exc, openai.RateLimitError):
        code = getattr(exc, "code", None) or ""
        return "insufficient_quota" not in str(code) + str(exc)
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 409)
    return isinstance(exc, openai.APIConnectionError | MalformedAnswer)


MODEL_RETRY = RetryPolicy(
    initial_interval=2.0,
    backoff_factor=2.0,
    max_interval=60.0,
    max_attempts=5,
    retry_on=retryable,
)


def timed(node: Callable[..., Awaitable[dict[str, Any]]]) -> Callable[..., Any]:
    """Add the node's wall time to `usage.active_seconds` (parallel tool tasks each add
    their own, which over-counts: the safe side for a time limit)."""

    @functools.wraps(node)
    async def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.monotonic()
        update = await node(*args, **kwargs)
        usage = dict(update.get("usage") or {})
        usage["active_seconds"] = usage.get("active_seconds", 0) + time.monotonic() - started
        return {**update, "usage": usage}

    return wrapper


def build_graph(
    *,
    model: BaseChatModel | ModelFactory | None = None,
    tools: Sequence[BaseTool] | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    cancel_requested: CancelCheck | None = None,
) -> CompiledStateGraph[AgentState, EnduroContext, AgentState, AgentState]:
    """Build the enduro graph.

    model: a chat model, or a factory `(EnduroContext) -> BaseChatModel`; default
        ChatOpenAI from OPENAI_API_KEY / OPENAI_BASE_URL and the context's model name.
    tools: the tools act may call; default the workspace file tools and fetch_url.
    checkpointer: a saver; None for langgraph dev, which supplies its own.
    cancel_requested: async `(thread_id) -> bool` the guard polls before every iteration.
    """
    if model is None:
        factory = openai_model_factory()
    elif isinstance(model, BaseChatModel):
        fixed = model
        factory = lambda _context: fixed  # noqa: E731
    else:
        factory = model
    services = Services(
        model_factory=factory,
        tools=list(default_tools() if tools is None else tools),
        cancel_requested=cancel_requested or _never_cancelled,
    )
    builder = StateGraph(AgentState, context_schema=EnduroContext)
    builder.add_node("plan", timed(make_plan_node(services)), retry_policy=MODEL_RETRY)
    builder.add_node("guard", make_guard_node(services))
    builder.add_node("act", timed(make_act_node(services)), retry_policy=MODEL_RETRY)
    builder.add_node("tools", timed(make_tools_node(services)), input_schema=ToolTask)
    builder.add_node("reflect", timed(make_reflect_node(services)), retry_policy=MODEL_RETRY)
    builder.add_node("finish", timed(make_finish_node(services)))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "guard")
    builder.add_conditional_edges("guard", route_after_guard, ["act", "finish"])
    builder.add_conditional_edges("act", dispatch_after_act, ["tools", "reflect"])
    builder.add_edge("tools", "guard")
    builder.add_edge("reflect", "guard")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer, name="enduro")


# For langgraph.json: no checkpointer here; `langgraph dev` brings enduro's own.
graph = build_graph()
