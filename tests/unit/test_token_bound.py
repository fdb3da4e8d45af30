"""The token bounds: a provable upper bound on prompt tokens from UTF-8 bytes, and the output
bound from max_tokens, with no tokenizer and no network."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from enduro.budgets.tokens import (
    NON_TEXT_PART_TOKENS,
    PER_MESSAGE_TOKENS,
    PER_REQUEST_TOKENS,
    input_token_bound,
    output_token_bound,
    with_output_cap,
)


class Review(BaseModel):
    """A verdict."""

    verdict: str = Field(description="done or retry")


def _utf8(text: str) -> int:
    return len(text.encode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(max_size=400), min_size=1, max_size=6))
def test_bound_covers_every_byte_of_every_message(texts: list[str]) -> None:
    # Each token of a byte-level BPE covers at least one byte: the bytes bound the tokens.
    messages = [SystemMessage(texts[0]), *[HumanMessage(t) for t in texts[1:]]]
    bound = input_token_bound(messages)
    assert bound >= PER_REQUEST_TOKENS + sum(_utf8(t) for t in texts)
    assert bound >= PER_REQUEST_TOKENS + len(messages) * PER_MESSAGE_TOKENS


def test_multibyte_text_counts_bytes_not_characters() -> None:
    text = "日本語のテキスト🙂" * 100
    assert input_token_bound([HumanMessage(text)]) >= _utf8(text) > len(text) * 2


def test_tool_calls_results_and_schemas_are_counted() -> None:
    call = {"name": "write_file", "args": {"path": "a.md", "content": "x" * 500}, "id": "c1"}
    messages = [
        HumanMessage("go"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("y" * 700, tool_call_id="c1"),
    ]
    without = input_token_bound(messages[:1])
    assert input_token_bound(messages) >= without + 500 + 700
    schema = convert_to_openai_tool(Review)
    with_schema = input_token_bound(messages, [schema])
    assert with_schema >= input_token_bound(messages) + len(json.dumps(schema))


def test_non_text_parts_get_a_fixed_allowance() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    message = HumanMessage(content=[{"type": "text", "text": "what is this"}, image])
    assert input_token_bound([message]) >= NON_TEXT_PART_TOKENS


def test_output_bound_is_max_tokens_times_choices() -> None:
    model = ChatOpenAI(model="gpt-4o-mini", api_key="x", max_tokens=300)  # type: ignore[call-arg, arg-type]
    assert output_token_bound(model) == 300
    several = ChatOpenAI(model="gpt-4o-mini", api_key="x", max_tokens=300, n=3)  # type: ignore[call-arg, arg-type]
    assert output_token_bound(several) == 900
    unbounded = ChatOpenAI(model="gpt-4o-mini", api_key="x")  # type: ignore[arg-type]
    assert output_token_bound(unbounded) is None


def test_a_model_without_max_tokens_gets_the_contexts() -> None:
    unbounded = ChatOpenAI(model="gpt-4o-mini", api_key="x")  # type: ignore[arg-type]
    capped = with_output_cap(unbounded, 512)
    assert output_token_bound(capped) == 512
    own = ChatOpenAI(model="gpt-4o-mini", api_key="x", max_tokens=64)  # type: ignore[call-arg, arg-type]
    assert with_output_cap(own, 512) is own, "a model's own cap is kept"
