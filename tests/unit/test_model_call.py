"""The model-call seam's chain: order, overrides, short-circuits (no model, no database)."""

from __future__ import annotations

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage

from enduro.model_call import ModelHandler, ModelRequest, ModelResponse, chain


class Tag:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def awrap_model_call(self, request: ModelRequest, handler: ModelHandler) -> ModelResponse:
        self.seen.append(f"{self.name}>")
        response = await handler(request.override(node=f"{request.node}/{self.name}"))
        self.seen.append(f"<{self.name}")
        return response


class Cached:
    async def awrap_model_call(self, request: ModelRequest, handler: ModelHandler) -> ModelResponse:
        return ModelResponse(result=[AIMessage("from cache")])


def _request() -> ModelRequest:
    return ModelRequest(
        model=FakeListChatModel(responses=["x"]), messages=[HumanMessage("hi")], node="act"
    )


async def test_first_middleware_is_outermost_and_overrides_reach_the_handler() -> None:
    seen: list[str] = []
    nodes: list[str] = []

    async def handler(request: ModelRequest) -> ModelResponse:
        nodes.append(request.node)
        return ModelResponse(result=[AIMessage("ok")])

    request = _request()
    response = await chain([Tag("a", seen), Tag("b", seen)], handler)(request)
    assert seen == ["a>", "b>", "<b", "<a"]
    assert nodes == ["act/a/b"] and request.node == "act", "requests are immutable"
    assert response.message is not None and response.message.content == "ok"


async def test_a_middleware_may_answer_without_calling_the_model() -> None:
    calls: list[ModelRequest] = []

    async def handler(request: ModelRequest) -> ModelResponse:
        calls.append(request)
        return ModelResponse(result=[])

    response = await chain([Cached()], handler)(_request())
    assert calls == [] and response.message is not None
    assert response.message.content == "from cache"


def test_tool_schemas_are_the_tools_or_the_response_format() -> None:
    from enduro.nodes.plan import Plan

    structured = _request().override(response_format=Plan)
    assert [s["function"]["name"] for s in structured.tool_schemas()] == ["Plan"]
    assert _request().tool_schemas() == []
