"""The enduro graph: plan → guard → act ⇄ tools → reflect → guard … → finish.

`build_graph(...)` is the factory; the module-level `graph` (for langgraph.json) has no
checkpointer of its own, so `langgraph dev` supplies one (enduro's, via checkpointer.path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy

from enduro.budgets.ledger import Ledger
from enduro.budgets.node import metered_node
from enduro.budgets.pricing import load_catalog
from enduro.budgets.service import BudgetService
from enduro.context import EnduroContext
from enduro.model_call import ModelCallMiddleware
from enduro.models import ModelSource
from enduro.nodes.act import make_act_node
from enduro.nodes.finish import make_finish_node
from enduro.nodes.guard import make_guard_node
from enduro.nodes.llm import MalformedAnswer, openai_model_factory
from enduro.nodes.plan import make_plan_node
from enduro.nodes.reflect import make_reflect_node
from enduro.nodes.routers import dispatch_after_act, route_after_guard
from enduro.nodes.services import CancelCheck, Services, _never_cancelled
from enduro.nodes.tools import make_tools_node
from enduro.state import AgentState, ToolTask
from enduro.tools import default_tools
from enduro.webhooks.session import env_handler

# Nodes price calls on the event loop, where a blocking file read is refused under
# `langgraph dev`: load the price catalogue now, while the graph module is imported.
load_catalog()


def retryable(exc: BaseException) -> bool:
    """Whether a node's failure is retried by LangGraph's RetryPolicy: malformed answers only.

    A retry runs the node again (each attempt reserved in the ledger like any call). Provider errors
    are not retried here: the budget seam already retried 429 and 5xx with backoff and Retry-After,
    and stopped the run on those retrying cannot fix.
    """
    return isinstance(exc, MalformedAnswer)


MODEL_RETRY = RetryPolicy(
    initial_interval=2.0,
    backoff_factor=2.0,
    max_interval=60.0,
    max_attempts=5,
    retry_on=retryable,
)


def build_graph(
    *,
    model: ModelSource = None,
    tools: Sequence[BaseTool] | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    cancel_requested: CancelCheck | None = None,
    events: BaseCallbackHandler | None = None,
    ledger: Ledger | None = None,
    middleware: Sequence[ModelCallMiddleware] = (),
) -> CompiledStateGraph[AgentState, EnduroContext, AgentState, AgentState]:
    """Build the enduro graph.

    model: a chat model, or a factory `(EnduroContext) -> BaseChatModel`; default
        ChatOpenAI from OPENAI_API_KEY / OPENAI_BASE_URL and the context's model name.
    tools: the tools act may call; default the workspace file tools and fetch_url.
    checkpointer: a saver; None for langgraph dev, which supplies its own.
    cancel_requested: async `(thread_id) -> bool` the guard polls before every iteration.
    events: a callback handler bound to the graph (webhook events); it then fires wherever
        the graph runs, `langgraph dev` included.
    ledger: the spend ledger (and run clock) on the run's database; None opens one lazily
        from ENDURO_DATABASE_URL on first use (how `langgraph dev` runs the graph).
    middleware: wrappers of every model call (`awrap_model_call(request, handler)`, see
        `enduro.model_call`), outermost first; enduro's budget always runs inside them.
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
        budget=BudgetService(ledger),
        middleware=list(middleware),
    )

    def timed(node: Any) -> Any:
        # Every node's time counts against max_minutes; a refused model call stops the run.
        return metered_node(node, services.budget)

    builder = StateGraph(AgentState, context_schema=EnduroContext)
    builder.add_node("plan", timed(make_plan_node(services)), retry_policy=MODEL_RETRY)
    builder.add_node("guard", timed(make_guard_node(services)))
    builder.add_node("act", timed(make_act_node(services)), retry_policy=MODEL_RETRY)
    builder.add_node("tools", timed(make_tools_node(services)), input_schema=ToolTask)
    builder.add_node("reflect", timed(make_reflect_node(services)), retry_policy=MODEL_RETRY)
    builder.add_node("finish", timed(make_finish_node(services)))
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "guard")
    builder.add_conditional_edges("guard", route_after_guard, ["act", "finish"])
    builder.add_conditional_edges("act", dispatch_after_act, ["tools", "reflect", "finish"])
    builder.add_edge("tools", "guard")
    builder.add_edge("reflect", "guard")
    builder.add_edge("finish", END)
    compiled = builder.compile(checkpointer=checkpointer, name="enduro")
    return compiled.with_config(callbacks=[events]) if events is not None else compiled


# For langgraph.json: no checkpointer here; `langgraph dev` brings enduro's own. Webhook
# events come from ENDURO_WEBHOOK_URL / ENDURO_WEBHOOK_SECRET when the server has them.
graph = build_graph(events=env_handler())
