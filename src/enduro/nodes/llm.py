"""Model access for the nodes: building the chat model and calling it.

Every model call goes through `invoke_model` / `invoke_structured`, the one seam where
budgets reserve and settle spend and where usage is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from enduro.budgets.seam import metered_call
from enduro.budgets.service import CallScope
from enduro.context import EnduroContext
from enduro.models import ModelFactory, note_used
from enduro.settings import Settings
from enduro.state import Usage

T = TypeVar("T", bound=BaseModel)


class MalformedAnswer(ValueError):
    """The model's structured answer did not parse; the node is retried."""


def openai_model_factory(settings: Settings | None = None) -> ModelFactory:
    """ChatOpenAI against OPENAI_API_KEY / OPENAI_BASE_URL, read when a call is made so the
    same graph serves the CLI and `langgraph dev`."""

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
            # None: every retry happens in the budget seam, where it is visible, counted in
            # the ledger and honours Retry-After however long.
            max_retries=0,
            # An (unhashable) Timeout object makes langchain-openai build a client for this
            # model instead of reusing its process-wide cached one: that one is bound to the
            # first event loop, and a worker calling advance_thread under a new loop would
            # get "Event loop is closed" from it.
            timeout=openai.Timeout(600.0),
            stream_usage=True,
        )

    return build


def usage_of(message: BaseMessage | None, usd: float = 0.0) -> Usage:
    """State counters for one answered call (`usd` for progress display only: limits and
    status read spend from the ledger)."""
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
    """Call the model; with a scope, within the thread's budget (reserve, call, settle)."""

    async def call(chosen: BaseChatModel) -> tuple[Any, AIMessage | None]:
        runnable: Any = chosen.bind_tools(list(tools)) if tools else chosen
        answer = await runnable.ainvoke(list(messages), config=config)
        note_used(chosen)
        return answer, answer if isinstance(answer, AIMessage) else None

    if scope is None:
        answer, _ = await call(model)
        usd = 0.0
    else:
        schemas = [convert_to_openai_tool(t) for t in tools]
        metered = await metered_call(scope, model, messages, schemas, call)
        answer, usd = metered.result, metered.usd
    if not isinstance(answer, AIMessage):
        raise MalformedAnswer(f"model returned {type(answer).__name__}, expected an AIMessage")
    return answer, usage_of(answer, usd)


async def invoke_structured(
    model: BaseChatModel,
    schema: type[T],
    messages: Sequence[BaseMessage],
    *,
    config: Any = None,
    scope: CallScope | None = None,
) -> tuple[T, Usage]:
    """Structured output by function calling; metered like `invoke_model`."""

    async def call(chosen: BaseChatModel) -> tuple[Any, AIMessage | None]:
        runnable = chosen.with_structured_output(
            schema, method="function_calling", include_raw=True
        )
        out: Any = await runnable.ainvoke(list(messages), config=config)
        note_used(chosen)
        raw = out.get("raw")
        return out, raw if isinstance(raw, AIMessage) else None

    if scope is None:
        out, raw = await call(model)
        usd = 0.0
    else:
        metered = await metered_call(scope, model, messages, [convert_to_openai_tool(schema)], call)
        out, raw, usd = metered.result, metered.raw, metered.usd
    usage = usage_of(raw, usd) if raw is not None else {"llm_calls": 1, "usd": usd}
    parsed = out.get("parsed")
    if not isinstance(parsed, schema):
        error = out.get("parsing_error") or "no tool call in the answer"
        raise MalformedAnswer(f"model answer is not a valid {schema.__name__}: {error}")
    return parsed, usage
