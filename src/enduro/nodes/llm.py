"""Model access for the nodes: building the chat model and calling it.

Every model call goes through `invoke_model` / `invoke_structured`, the one seam where
budgets reserve and settle spend and where usage is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel

from enduro.context import EnduroContext
from enduro.settings import Settings
from enduro.state import Usage

ModelFactory = Callable[[EnduroContext], BaseChatModel]
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
            # Kept low so retries happen in the graph's RetryPolicy, where they are visible.
            max_retries=1,
            timeout=600,
            stream_usage=True,
        )

    return build


def usage_of(message: BaseMessage) -> Usage:
    meta = getattr(message, "usage_metadata", None) or {}
    return {
        "llm_calls": 1,
        "input_tokens": int(meta.get("input_tokens", 0)),
        "output_tokens": int(meta.get("output_tokens", 0)),
    }


async def invoke_model(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    *,
    tools: Sequence[BaseTool] = (),
    config: Any = None,
) -> tuple[AIMessage, Usage]:
    runnable: Any = model.bind_tools(list(tools)) if tools else model
    answer = await runnable.ainvoke(list(messages), config=config)
    if not isinstance(answer, AIMessage):
        raise MalformedAnswer(f"model returned {type(answer).__name__}, expected an AIMessage")
    return answer, usage_of(answer)


async def invoke_structured(
    model: BaseChatModel, schema: type[T], messages: Sequence[BaseMessage], *, config: Any = None
) -> tuple[T, Usage]:
    runnable = model.with_structured_output(schema, method="function_calling", include_raw=True)
    out: Any = await runnable.ainvoke(list(messages), config=config)
    raw = out.get("raw")
    usage = usage_of(raw) if raw is not None else {"llm_calls": 1}
    parsed = out.get("parsed")
    if not isinstance(parsed, schema):
        error = out.get("parsing_error") or "no tool call in the answer"
        raise MalformedAnswer(f"model answer is not a valid {schema.__name__}: {error}")
    return parsed, usage
