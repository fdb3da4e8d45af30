"""Upper bounds on the tokens of one model call, without a tokenizer and without network.

Input: every BPE vocabulary the providers use (byte-level BPE, or SentencePiece with byte
fallback) turns a text of B UTF-8 bytes into at most B tokens, because each token covers at
least one byte. So the UTF-8 length of everything a request carries (messages as JSON, the
tool schemas and the response format), plus a fixed allowance for the chat template's
special tokens per request, per message and per tool, bounds the prompt tokens the provider
can bill. Typical English runs at about four bytes per token, so the bound is loose (about
4x) but it is a bound; tiktoken would be tighter but downloads its encodings on first use,
and counts only OpenAI's tokenizers.

Output: the `max_tokens` enduro sets on every call (times `n` when several choices are asked
for); a model without one has no output bound and cannot run under a dollar limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, convert_to_openai_messages

# Chat-template allowances (role markers, separators, tool-calling preambles). OpenAI's
# documented overhead is 3 tokens per message and 3 per reply; open-model templates add a
# few dozen tokens of instructions around tools. These are generous on purpose.
PER_REQUEST_TOKENS = 256
PER_MESSAGE_TOKENS = 16
PER_TOOL_TOKENS = 64
# Images, audio and files are billed by size or duration, not by their bytes in the
# request; a fixed allowance per part (above OpenAI's largest high-detail image cost).
NON_TEXT_PART_TOKENS = 50_000
_TEXT_PART_TYPES = {"text", "tool_use", "tool_call", "reasoning", "thinking"}


def _utf8_len(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))


def _message_bound(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return PER_MESSAGE_TOKENS + _utf8_len(message)
    extra = 0
    text_parts: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else "text"
        if kind in _TEXT_PART_TYPES or isinstance(part, str):
            text_parts.append(part)
        else:
            extra += NON_TEXT_PART_TOKENS
    rest = {k: v for k, v in message.items() if k != "content"}
    return PER_MESSAGE_TOKENS + _utf8_len(rest) + _utf8_len(text_parts) + extra


def input_token_bound(
    messages: Sequence[BaseMessage], tool_schemas: Sequence[Mapping[str, Any]] = ()
) -> int:
    """Most prompt tokens a request with these messages and tool schemas can be billed."""
    total = PER_REQUEST_TOKENS
    for message in convert_to_openai_messages(list(messages)):
        total += _message_bound(message)
    for schema in tool_schemas:
        total += PER_TOOL_TOKENS + _utf8_len(schema)
    return total


def output_token_bound(model: BaseChatModel) -> int | None:
    """Most completion tokens one call of `model` can be billed, or None if unbounded."""
    cap = None
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = getattr(model, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            cap = value
            break
    if cap is None:
        return None
    choices = getattr(model, "n", None)
    return cap * (choices if isinstance(choices, int) and choices > 1 else 1)


def with_output_cap(model: BaseChatModel, cap: int) -> BaseChatModel:
    """`model` with `max_tokens=cap` when it has that field and leaves it unset.

    A model passed in by a library user is bounded like enduro's own.
    """
    fields = getattr(type(model), "model_fields", {})
    if "max_tokens" in fields and getattr(model, "max_tokens", None) is None:
        return model.model_copy(update={"max_tokens": cap})
    return model
