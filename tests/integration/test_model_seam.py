"""The model-call seam with a chat model that is not OpenAI's: its errors become known to the
budget through a registered classifier, and a caller's middleware wraps the budget's
reserved attempts. Real ledger on both engines; the model is in-process (no provider)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from budgetkit import ledger_rows, totals
from enduro.budgets import provider_errors
from enduro.budgets.ledger import Ledger
from enduro.budgets.metered import BudgetMiddleware
from enduro.budgets.provider_errors import Failure, register_error_classifier
from enduro.budgets.service import BudgetService
from enduro.context import EnduroContext
from enduro.errors import ProviderStop
from enduro.model_call import CallScope, ModelHandler, ModelRequest, ModelResponse
from enduro.nodes.llm import invoke_model
from enduro.storage import open_backend


class FooOverloaded(Exception):
    """Another provider's SDK error: busy, try again."""


class FooBadKey(Exception):
    """Another provider's SDK error: the key is wrong."""


class FooChat(BaseChatModel):
    """Another provider's chat model: fails with its own errors, as scripted, then answers
    with usage."""

    model_name: str = "foo-1"
    max_tokens: int = 100
    script: list[Exception | None] = []

    @property
    def _llm_type(self) -> str:
        return "foo"

    def _generate(self, messages: list[BaseMessage], *a: Any, **kw: Any) -> ChatResult:
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error
        usage = {"input_tokens": 40, "output_tokens": 10, "total_tokens": 50}
        message = AIMessage("done", usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def classify_foo(exc: BaseException, thread_id: str) -> Failure | None:
    if isinstance(exc, FooOverloaded):
        return Failure("rate_limit", False, f"foo overloaded: {exc}", retry_after=0.0)
    if isinstance(exc, FooBadKey):
        stop = ProviderStop(f"invalid_api_key: foo says {exc}; fix FOO_KEY, then resume")
        return Failure("fatal", False, str(exc), stop=stop)
    return None


@pytest.fixture
def foo_errors_known(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(provider_errors, "_CLASSIFIERS", [])
    register_error_classifier(classify_foo)
    yield


CONTEXT = EnduroContext(model="foo-1", max_usd=1.0, prices={"foo-1": {"input": 1.0, "output": 2.0}})


async def _call(
    db_url: str, model: FooChat, *outer: Any, tid: str | None = None
) -> tuple[str, AIMessage]:
    tid = tid or f"t-{uuid.uuid4().hex[:12]}"
    async with open_backend(db_url) as backend:
        budget = BudgetMiddleware(BudgetService(Ledger(backend.db)))
        scope = CallScope([*outer, budget], CONTEXT, tid, "act")
        answer, _ = await invoke_model(model, [HumanMessage("go")], scope=scope)
    return tid, answer


async def test_another_providers_rate_limits_are_retried_and_released(
    db_url: str, foo_errors_known: None
) -> None:
    model = FooChat(script=[FooOverloaded("busy"), FooOverloaded("busy"), None])
    tid, answer = await _call(db_url, model)
    assert answer.content == "done"
    rows = await ledger_rows(db_url, tid)
    assert [r["state"] for r in rows] == ["released", "released", "settled"]
    spent = await totals(db_url, tid)
    assert spent.llm_calls == 1 and spent.input_tokens == 40 and spent.output_tokens == 10


async def test_another_providers_fatal_error_stops_with_its_reason(
    db_url: str, foo_errors_known: None
) -> None:
    with pytest.raises(ProviderStop, match="fix FOO_KEY"):
        await _call(db_url, FooChat(script=[FooBadKey("401")]))


async def test_an_error_no_classifier_knows_propagates_and_stays_charged(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(provider_errors, "_CLASSIFIERS", [])
    tid = f"t-{uuid.uuid4().hex[:12]}"
    with pytest.raises(FooOverloaded):
        await _call(db_url, FooChat(script=[FooOverloaded("busy")]), tid=tid)
    rows = await ledger_rows(db_url, tid)
    assert [r["state"] for r in rows] == ["lost"], "unknown: the provider may have billed it"
    assert (await totals(db_url, tid)).charged_nusd == rows[0]["reserved_nusd"] > 0


class CountingMiddleware:
    """A caller's middleware: sees each call once, however often the budget retried."""

    def __init__(self) -> None:
        self.requests: list[ModelRequest] = []

    async def awrap_model_call(self, request: ModelRequest, handler: ModelHandler) -> ModelResponse:
        self.requests.append(request)
        return await handler(request.override(node="act-wrapped"))


async def test_a_callers_middleware_wraps_the_budget(db_url: str, foo_errors_known: None) -> None:
    outer = CountingMiddleware()
    model = FooChat(script=[FooOverloaded("busy"), None])
    tid, _ = await _call(db_url, model, outer)
    assert [r.node for r in outer.requests] == ["act"]
    rows = await ledger_rows(db_url, tid)
    assert {r["node"] for r in rows} == {"act-wrapped"}, "the override reached the budget"
    assert [r["state"] for r in rows] == ["released", "settled"]
