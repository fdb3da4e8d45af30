"""What the nodes need from outside the state.

The model, the tools, cancel requests and the budget (ledger, clock).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from enduro.budgets.metered import BudgetMiddleware
from enduro.budgets.service import BudgetService
from enduro.budgets.tokens import with_output_cap
from enduro.context import EnduroContext
from enduro.model_call import CallScope, ModelCallMiddleware
from enduro.models import ModelFactory, bind_to_loop

CancelCheck = Callable[[str], Awaitable[bool]]


async def _never_cancelled(thread_id: str) -> bool:
    return False


@dataclass
class Services:
    """What the graph's nodes get from outside the state, fixed when the graph is built.

    The model factory (called per call with the run's context), the tools, the cancel
    check, the budget service and the caller's model-call middleware.
    """

    model_factory: ModelFactory
    tools: Sequence[BaseTool]
    cancel_requested: CancelCheck = _never_cancelled
    budget: BudgetService = field(default_factory=BudgetService)
    middleware: Sequence[ModelCallMiddleware] = ()
    """The caller's model-call middleware, outermost first; the budget always runs inside
    them, next to the model, so every attempt they make is reserved and settled."""
    # Per event loop (weakly, so a closed loop's models go with it): HTTP clients are bound
    # to the loop that opened their connections (see enduro.models).
    _models: weakref.WeakKeyDictionary[
        asyncio.AbstractEventLoop, dict[tuple[str, int], BaseChatModel]
    ] = field(default_factory=weakref.WeakKeyDictionary)

    def model(self, context: EnduroContext) -> BaseChatModel:
        """The chat model for `context` on the running event loop.

        One per (model, max_tokens) and loop, so its HTTP connection pool is reused within a
        run and never across loops. A model passed in without max_tokens gets the context's,
        so every call has an output bound.

        Raises:
            LoopBoundModel: the model holds a client used on another event loop (what to do
                is in the message).
        """
        models = self._models.setdefault(asyncio.get_running_loop(), {})
        key = (context.model, context.max_output_tokens)
        if key not in models:
            built = self.model_factory(context)
            models[key] = bind_to_loop(with_output_cap(built, context.max_output_tokens))
        return models[key]

    def scope(
        self, context: EnduroContext, config: RunnableConfig, node: str, *, final: bool = False
    ) -> CallScope:
        """The scope of one model call: who makes it and the middleware it goes through.

        Who: `node` of this thread. Middleware: the caller's (`middleware`), then the budget.
        """
        chain = [*self.middleware, BudgetMiddleware(self.budget)]
        return CallScope(chain, context, thread_id_of(config), node, final=final)


def context_of(runtime: Any) -> EnduroContext:
    """The run's context; a run started without one gets the defaults."""
    context = getattr(runtime, "context", None)
    if isinstance(context, EnduroContext):
        return context
    if isinstance(context, dict):
        return EnduroContext.from_dict(context)
    return EnduroContext()


def thread_id_of(config: RunnableConfig) -> str:
    """The thread id of the run, from `config["configurable"]["thread_id"]`.

    Raises:
        ValueError: the config has no thread id (enduro graphs need one).
    """
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if not thread_id:
        raise ValueError("enduro graphs need config['configurable']['thread_id']")
    return str(thread_id)


def workspace_root(context: EnduroContext, config: RunnableConfig) -> Path:
    """The thread's own workspace directory: `<context.workspace>/<thread_id>`, absolute."""
    return (Path(context.workspace) / thread_id_of(config)).resolve()


def model_config(config: RunnableConfig, node: str) -> dict[str, Any]:
    """Config for a model call, tagged with the node.

    Traces and callbacks can then tell plan, act, reflect and finish calls apart.
    """
    return {"tags": [f"enduro:{node}"], "metadata": {"enduro_node": node}}
