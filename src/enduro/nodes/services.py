"""What the nodes need from outside the state: the model, the tools, cancel requests and the
budget (ledger, clock)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool

from enduro.budgets.service import BudgetService, CallScope
from enduro.budgets.tokens import with_output_cap
from enduro.context import EnduroContext
from enduro.nodes.llm import ModelFactory

CancelCheck = Callable[[str], Awaitable[bool]]


async def _never_cancelled(thread_id: str) -> bool:
    return False


@dataclass
class Services:
    model_factory: ModelFactory
    tools: Sequence[BaseTool]
    cancel_requested: CancelCheck = _never_cancelled
    budget: BudgetService = field(default_factory=BudgetService)
    _models: dict[tuple[str, int], BaseChatModel] = field(default_factory=dict)

    def model(self, context: EnduroContext) -> BaseChatModel:
        """One client per (model, max_tokens), so its HTTP connection pool is reused. A model
        passed in without max_tokens gets the context's, so every call has an output bound."""
        key = (context.model, context.max_output_tokens)
        if key not in self._models:
            built = self.model_factory(context)
            self._models[key] = with_output_cap(built, context.max_output_tokens)
        return self._models[key]

    def scope(
        self, context: EnduroContext, config: RunnableConfig, node: str, *, final: bool = False
    ) -> CallScope:
        """What the budget seam needs to meter a model call made by `node`."""
        return CallScope(self.budget, context, thread_id_of(config), node, final=final)


def context_of(runtime: Any) -> EnduroContext:
    """The run's context; a run started without one gets the defaults."""
    context = getattr(runtime, "context", None)
    if isinstance(context, EnduroContext):
        return context
    if isinstance(context, dict):
        return EnduroContext.from_dict(context)
    return EnduroContext()


def thread_id_of(config: RunnableConfig) -> str:
    thread_id = (config.get("configurable") or {}).get("thread_id")
    if not thread_id:
        raise ValueError("enduro graphs need config['configurable']['thread_id']")
    return str(thread_id)


def workspace_root(context: EnduroContext, config: RunnableConfig) -> Path:
    return (Path(context.workspace) / thread_id_of(config)).resolve()


def model_config(config: RunnableConfig, node: str) -> dict[str, Any]:
    """Config for a model call: tagged with the node, so traces and callbacks can tell
    plan, act, reflect and finish calls apart."""
    return {"tags": [f"enduro:{node}"], "metadata": {"enduro_node": node}}
