"""The one seam every model call of the graph goes through, shaped like LangChain v1's middleware.

A `ModelRequest` goes through a chain of `awrap_model_call(request, handler)` wrappers; the
innermost handler calls the chat model and returns a `ModelResponse`.

A middleware may change the request (`request.override(...)`), call `handler` once, several
times (retries) or not at all (a refused budget), and change the response. The first
middleware of the list is the outermost. enduro's budget (reserve, call, settle, retry) is
one middleware (`enduro.budgets.metered.BudgetMiddleware`); pools, per-step caps or a
streaming cut-off are further ones, or extend it.

Differences from `langchain.agents.middleware`: the request carries enduro's call identity
(thread, node, whether it is finish's summarising call) and the run's `EnduroContext`
instead of the agent state; the response also carries what the ledger charged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from enduro.context import EnduroContext
from enduro.models import note_used


@dataclass(frozen=True, kw_only=True)
class ModelRequest:
    """One model call: what to send, and on whose behalf."""

    model: BaseChatModel
    """The chat model to call (a middleware may swap it, e.g. for a lower max_tokens)."""
    messages: Sequence[BaseMessage]
    """The prompt, system message included."""
    tools: Sequence[BaseTool] = ()
    """Tools the model may call (act)."""
    response_format: type[BaseModel] | None = None
    """A schema for structured output by function calling (plan, reflect); then `tools` is
    empty and the response's `structured_response` holds the parsed object."""
    context: EnduroContext = field(default_factory=EnduroContext)
    """The run's knobs: limits, prices, timeouts."""
    thread_id: str = ""
    """The thread the call is made for (its ledger rows, its clock); "" outside a run."""
    node: str = ""
    """The graph node making the call (`plan`, `act`, `reflect`, `finish`)."""
    final: bool = False
    """finish's summarising call: may use the finalization reserve."""
    config: RunnableConfig | None = None
    """Config for the chat model's `ainvoke` (tags and metadata naming the node)."""

    def override(self, **changes: Any) -> ModelRequest:
        """A copy with `changes` applied (the request itself is immutable).

        Raises:
            TypeError: a name that is not a field of `ModelRequest`.
        """
        return dataclasses.replace(self, **changes)

    def tool_schemas(self) -> list[dict[str, Any]]:
        """The OpenAI-format schemas the request sends: its tools, or its response format."""
        if self.response_format is not None:
            return [convert_to_openai_tool(self.response_format)]
        return [convert_to_openai_tool(t) for t in self.tools]


@dataclass(frozen=True)
class ModelResponse:
    """What a model call returned."""

    result: list[BaseMessage]
    """The answer: one AIMessage (the one carrying the provider's usage), or none when a
    structured call returned no raw message."""
    structured_response: Any = None
    """The parsed `response_format` object, or None (not asked for, or did not parse)."""
    parsing_error: BaseException | None = None
    """Why the structured answer did not parse, when it did not."""
    usd: float = 0.0
    """US dollars the ledger charged for the call (settled usage, or the reservation kept
    when no usage was reported); 0 without a budget middleware. For display only."""

    @property
    def message(self) -> AIMessage | None:
        """The AIMessage of the answer, if there is one."""
        last = self.result[-1] if self.result else None
        return last if isinstance(last, AIMessage) else None


ModelHandler = Callable[[ModelRequest], Awaitable[ModelResponse]]
"""Executes a request: the next middleware inward, or the chat model itself."""


class ModelCallMiddleware(Protocol):
    """Wraps every model call (see the module docstring)."""

    async def awrap_model_call(self, request: ModelRequest, handler: ModelHandler) -> ModelResponse:
        """Handle `request`, calling `handler` to run the rest of the chain."""
        ...


@dataclass(frozen=True)
class CallScope:
    """Who makes a call and through which middleware.

    What a node hands to `invoke_model` / `invoke_structured` (built by `Services.scope`).
    """

    middleware: Sequence[ModelCallMiddleware]
    """The chain every call of the graph goes through, outermost first."""
    context: EnduroContext
    thread_id: str
    node: str
    final: bool = False
    """finish's summarising call (may use the finalization reserve)."""

    def request(
        self, model: BaseChatModel, messages: Sequence[BaseMessage], **more: Any
    ) -> ModelRequest:
        """A request for this caller; `more` sets the other `ModelRequest` fields."""
        return ModelRequest(
            model=model,
            messages=messages,
            context=self.context,
            thread_id=self.thread_id,
            node=self.node,
            final=self.final,
            **more,
        )

    async def call(self, request: ModelRequest) -> ModelResponse:
        """Run `request` through the middleware chain to the chat model."""
        return await chain(self.middleware, call_chat_model)(request)


def chain(middleware: Sequence[ModelCallMiddleware], handler: ModelHandler) -> ModelHandler:
    """`handler` wrapped by `middleware`, the first of the list outermost."""
    wrapped = handler
    for layer in reversed(middleware):
        wrapped = _wrap(layer, wrapped)
    return wrapped


def _wrap(layer: ModelCallMiddleware, inner: ModelHandler) -> ModelHandler:
    async def call(request: ModelRequest) -> ModelResponse:
        return await layer.awrap_model_call(request, inner)

    return call


async def call_chat_model(request: ModelRequest) -> ModelResponse:
    """The innermost handler: call `request.model` once, with tools or structured output."""
    messages = list(request.messages)
    if request.response_format is not None:
        runnable: Any = request.model.with_structured_output(
            request.response_format, method="function_calling", include_raw=True
        )
        out: Mapping[str, Any] = await runnable.ainvoke(messages, config=request.config)
        note_used(request.model)
        raw = out.get("raw")
        return ModelResponse(
            result=[raw] if isinstance(raw, BaseMessage) else [],
            structured_response=out.get("parsed"),
            parsing_error=out.get("parsing_error"),
        )
    bound: Any = request.model.bind_tools(list(request.tools)) if request.tools else request.model
    answer = await bound.ainvoke(messages, config=request.config)
    note_used(request.model)
    return ModelResponse(result=[answer])
