"""Binding chat models to the running event loop (enduro.models), without network."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from enduro.models import bind_to_loop, check_loop, note_used


def test_chat_openai_gets_its_own_client_and_keeps_its_settings() -> None:
    model = ChatOpenAI(
        model="m",
        base_url="http://127.0.0.1:9/v1",
        api_key=SecretStr("k"),
        max_completion_tokens=7,  # ChatOpenAI's name for `max_tokens` (its alias)
        temperature=0.3,
    )
    bound = bind_to_loop(model)
    assert bound is not model
    assert bound.root_async_client._client is not model.root_async_client._client
    assert (bound.model_name, bound.max_tokens, bound.temperature) == ("m", 7, 0.3)
    assert str(bound.root_async_client.base_url) == "http://127.0.0.1:9/v1/"
    assert isinstance(bound.openai_api_key, SecretStr)
    assert bound.openai_api_key.get_secret_value() == "k"
    again = bind_to_loop(model)
    assert again.root_async_client._client is not bound.root_async_client._client


def test_a_callers_own_http_client_is_kept_then_checked() -> None:
    own = openai.DefaultAsyncHttpxClient()
    model = ChatOpenAI(model="m", api_key="k", http_async_client=own)  # type: ignore[arg-type]
    assert bind_to_loop(model) is model

    async def use() -> None:
        note_used(model)

    asyncio.run(use())

    async def later() -> str:
        try:
            bind_to_loop(model)
        except Exception as exc:  # LoopBoundModel
            return str(exc)
        return "accepted"

    message = asyncio.run(later())
    assert "ChatOpenAI.http_async_client" in message or "ChatOpenAI.root_async_client" in message


class _Holder(FakeListChatModel):
    extra: Any = None


def test_models_without_clients_pass_everywhere() -> None:
    model = _Holder(responses=["x"], extra={"nested": [1, "two"]})

    async def use() -> None:
        note_used(model)
        check_loop(model)

    asyncio.run(use())
    asyncio.run(use())


def test_a_client_deep_in_the_model_is_found_by_path() -> None:
    client = httpx.AsyncClient()
    model = _Holder(responses=["x"], extra={"sdk": [{"transport": client}]})

    async def first() -> None:
        note_used(model)

    async def second() -> str:
        try:
            check_loop(model)
        except Exception as exc:
            return str(exc)
        return "accepted"

    asyncio.run(first())
    message = asyncio.run(second())
    assert "_Holder.extra['sdk'][0]['transport']" in message
    assert "model=lambda context: _Holder(...)" in message
