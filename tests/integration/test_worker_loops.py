"""The distributed seam: one process advancing threads under successive event loops (as a
worker that calls `asyncio.run(advance_thread(...))` per job does).

Every kind of model a caller can pass is tried: none (enduro's own), one ChatOpenAI built at
import time, a factory building a fresh ChatOpenAI per job (langchain-openai then hands it
its process-wide cached HTTP client), and a chat model of another provider holding its own
HTTP client.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_openai import ChatOpenAI
from pydantic import ConfigDict

from enduro.context import EnduroContext
from enduro.errors import ConfigError
from enduro.models import ModelSource
from enduro.runner import advance_thread, create_run
from enduro.storage import open_backend
from fakellm import ScriptedLLM


def _jobs(db: str, model: ModelSource, n: int = 3) -> list[str]:
    """`n` jobs, each in its own event loop, as a worker runs them."""

    async def job() -> str:
        async with open_backend(db) as backend:
            tid = await create_run(backend, "g", EnduroContext(), str(uuid.uuid4()))
        outcome = await advance_thread(tid, database_url=db, model=model)
        return f"{outcome.status} {outcome.stop_reason or ''}".strip()

    return [asyncio.run(job()) for _ in range(n)]


def test_successive_event_loops_share_nothing(llm_env: ScriptedLLM, tmp_path: Path) -> None:
    # Each asyncio.run is a new loop; clients cached from a closed loop would fail here.
    assert _jobs(str(tmp_path / "w.sqlite"), None) == ["completed"] * 3


def test_one_chat_openai_built_at_import_time(db_url: str, llm_env: ScriptedLLM) -> None:
    model = ChatOpenAI(model="gpt-4o-mini", base_url=llm_env.base_url, api_key="k")  # type: ignore[arg-type]
    assert _jobs(db_url, model) == ["completed"] * 3


def test_a_factory_of_fresh_chat_openai(db_url: str, llm_env: ScriptedLLM) -> None:
    def factory(context: EnduroContext) -> BaseChatModel:
        return ChatOpenAI(model=context.model, base_url=llm_env.base_url, api_key="k")  # type: ignore[arg-type]

    assert _jobs(db_url, factory) == ["completed"] * 3


class OtherProviderChat(BaseChatModel):
    """A chat model of another provider: its own pooled HTTP client, made when it is built
    (as most SDK clients are), speaking to the scripted server."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    base_url: str
    max_tokens: int = 512
    client: httpx.AsyncClient
    tools: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return "other-provider"

    def _http(self) -> httpx.AsyncClient:
        return self.client

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        schemas = [convert_to_openai_tool(t) for t in tools]
        return self.model_copy(update={"tools": schemas})

    def _generate(self, messages: list[BaseMessage], *a: Any, **kw: Any) -> ChatResult:
        raise NotImplementedError("async only")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from langchain_core.messages import convert_to_openai_messages

        body: dict[str, Any] = {
            "model": "other-model",
            "messages": convert_to_openai_messages(messages),
            "max_tokens": self.max_tokens,
        }
        tools = kwargs.get("tools") or self.tools
        if tools:
            body["tools"] = tools
        if kwargs.get("tool_choice"):
            body["tool_choice"] = kwargs["tool_choice"]
        answer = (await self._http().post(f"{self.base_url}/chat/completions", json=body)).json()
        choice = answer["choices"][0]["message"]
        calls = [
            {
                "name": c["function"]["name"],
                "args": json.loads(c["function"]["arguments"]),
                "id": c["id"],
            }
            for c in choice.get("tool_calls") or []
        ]
        usage = answer.get("usage") or {}
        message = AIMessage(
            choice.get("content") or "",
            tool_calls=calls,
            usage_metadata={
                "input_tokens": usage.get("prompt_tokens", 0),
                "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _other(llm: ScriptedLLM) -> OtherProviderChat:
    return OtherProviderChat(base_url=llm.base_url, client=httpx.AsyncClient())


_PROCESS_CLIENT: list[httpx.AsyncClient] = []


class SharedClientChat(OtherProviderChat):
    """Like SDKs that cache one client per process, made on first use: nothing reachable
    from the model shows it before the call."""

    def _http(self) -> httpx.AsyncClient:
        if not _PROCESS_CLIENT:
            _PROCESS_CLIENT.append(httpx.AsyncClient())
        return _PROCESS_CLIENT[0]


def test_a_process_wide_client_enduro_cannot_see_stops_with_what_to_do(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    _PROCESS_CLIENT.clear()

    def factory(_context: EnduroContext) -> BaseChatModel:
        return SharedClientChat(base_url=llm_env.base_url, client=httpx.AsyncClient())

    first, second = _jobs(db_url, factory, n=2)
    assert first == "completed"
    assert second.startswith("failed model_loop_bound: "), second
    assert "model=lambda context:" in second and "register_loop_binder" in second


def test_another_providers_model_in_a_factory(db_url: str, llm_env: ScriptedLLM) -> None:
    assert _jobs(db_url, lambda _context: _other(llm_env)) == ["completed"] * 3


def test_another_providers_model_bound_to_a_loop_is_refused_before_it_starts(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    model = _other(llm_env)
    assert _jobs(db_url, model, n=1) == ["completed"]
    calls = len(llm_env.requests)
    with pytest.raises(ConfigError) as refused:
        _jobs(db_url, model, n=1)
    message = str(refused.value)
    assert "OtherProviderChat" in message and "event loop" in message
    assert "model=lambda context:" in message and "register_loop_binder" in message
    assert len(llm_env.requests) == calls, "refused before any model call"


def test_a_registered_binder_makes_another_providers_instance_work(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    from enduro.models import register_loop_binder

    class Rebindable(OtherProviderChat):
        pass

    rebind: Callable[[Rebindable], Rebindable] = lambda m: m.model_copy(  # noqa: E731
        update={"client": httpx.AsyncClient()}
    )
    register_loop_binder(Rebindable, rebind)
    model = Rebindable(base_url=llm_env.base_url, client=httpx.AsyncClient())
    assert _jobs(db_url, model) == ["completed"] * 3


def test_a_client_connected_in_one_loop_serves_jobs_in_others(
    db_url: str, llm_env: ScriptedLLM
) -> None:
    from enduro.client import Client

    client = Client(db_url)
    asyncio.run(client.connect())  # e.g. at worker start-up, in a loop of its own
    try:
        outcomes = [asyncio.run(client.run("g")).status for _ in range(3)]
        assert outcomes == ["completed"] * 3
        assert [t.status for t in client.list_sync()] == ["completed"] * 3
    finally:
        asyncio.run(client.close())
