"""Model access for the nodes: building the chat model and calling it.

Every model call of a node goes through `invoke_model` / `invoke_structured`, which send a
`ModelRequest` through the graph's middleware chain (`enduro.model_call`; the budget is one
middleware) and turn the response into the node's usage counters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from enduro.context import EnduroContext
from enduro.model_call import CallScope, ModelRequest, ModelResponse, call_chat_model
from enduro.models import ModelFactory
from enduro.settings import Settings
from enduro.state import Usage

T = TypeVar("T", bound=BaseModel)


class MalformedAnswer(ValueError):
    """The model's structured answer did not parse; the node is retried."""


def openai_model_factory(settings: Settings | None = None) -> ModelFactory:
    """A model factory building ChatOpenAI against OPENAI_API_KEY / OPENAI_BASE_URL.

    The variables are read when a call is made, so the same graph serves the CLI and `langgraph
    dev`.
    """

    def build(context: EnduroContext) -> BaseChatModel:
        from langchain_openai import ChatOpenAI

        s = settings or Settings.from_env()
        s.require_model_endpoint()
        return ChatOpenAI(
            model=context.model,
            base_url=s.base_url,
            # Local OpenAI-compatible servers accept any key; the client insists on one.
            api_key=s.api_key or "not-needed",  # type: ignore[arg-type]
            max_tokens=context.max_output_tokens,  # type: ignore[call-arg]
            # None: every retry happens in the budget middleware, where it is visible,
            # counted in the ledger and honours Retry-After however long.
            max_retries=0,
            # An (unhashable) Timeout object makes langchain-openai build a client for this
            # model instead of reusing its process-wide cached one, which is bound to the
            # first event loop (enduro.models rebinds every model per loop as well).
            timeout=openai.Timeout(600.0),
            stream_usage=True,
        )

    return build


def usage_of(message: BaseMessage | None, usd: float = 0.0) -> Usage:
    """State counters for one answered call (tokens from its `usage_metadata`, one call).

    `usd` is for progress display only: limits and status read spend from the ledger.
    """
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        "llm_calls": 1,
        "input_tokens": int(meta.get("input_tokens", 0)),
        "output_tokens": int(meta.get("output_tokens", 0)),
        "usd": usd,
    }


async def invoke_model(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    *,
    tools: Sequence[BaseTool] = (),
    config: Any = None,
    scope: CallScope | None = None,
) -> tuple[AIMessage, Usage]:
    """Call the model, through the scope's middleware (the budget) when given.

    Returns:
        The answer and the state's usage counters for it.

    Raises:
        MalformedAnswer: the model returned something other than an AIMessage.
        RunStop: the budget middleware stops the run (a limit, a provider refusal).
    """
    response = await _call(model, messages, scope, tools=tools, config=config)
    answer = response.result[-1] if response.result else None
    if not isinstance(answer, AIMessage):
        raise MalformedAnswer(f"model returned {type(answer).__name__}, expected an AIMessage")
    return answer, usage_of(answer, response.usd)


async def invoke_structured(
    model: BaseChatModel,
    schema: type[T],
    messages: Sequence[BaseMessage],
    *,
    config: Any = None,
    scope: CallScope | None = None,
) -> tuple[T, Usage]:
    """Structured output by function calling; through the middleware like `invoke_model`.

    Raises:
        MalformedAnswer: the answer does not parse as `schema` (the node is retried).
        RunStop: the budget middleware stops the run.
    """
    response = await _call(model, messages, scope, response_format=schema, config=config)
    raw = response.message
    usage = (
        usage_of(raw, response.usd) if raw is not None else {"llm_calls": 1, "usd": response.usd}
    )
    parsed = response.structured_response
    if not isinstance(parsed, schema):
        error = response.parsing_error or "no tool call in the answer"
        raise MalformedAnswer(f"model answer is not a valid {schema.__name__}: {error}")
    return parsed, usage


async def _call(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    scope: CallScope | None,
    **fields: Any,
) -> ModelResponse:
    if scope is None:
        return await call_chat_model(ModelRequest(model=model, messages=messages, **fields))
    return await scope.call(scope.request(model, messages, **fields))
