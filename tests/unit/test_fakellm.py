"""Tests for the scripted OpenAI-compatible server (tests/fakellm.py), driven by ChatOpenAI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import openai
import pytest
from langchain_core.exceptions import (
    ModelAuthenticationError,
    ModelRateLimitError,
)
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

TESTS_DIR = Path(__file__).resolve().parents[1]
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from fakellm import Fault, ScriptedLLM  # noqa: E402


class PlanStep(BaseModel):
    title: str
    detail: str


class Plan(BaseModel):
    """A plan."""

    steps: list[PlanStep]


class StepReview(BaseModel):
    """Review of one step."""

    verdict: Literal["done", "retry", "replan", "give_up"]
    summary: str
    new_steps: list[PlanStep] = []


@tool
def write_file(path: str, content: str) -> str:
    """Write a file into the workspace."""
    return f"wrote {path}"


def step_msgs(step_id: str, title: str) -> list[SystemMessage | HumanMessage]:
    return [
        SystemMessage(f"You are a worker.\nCurrent step [{step_id}]: {title}\nBe brief."),
        HumanMessage("Do the step."),
    ]


def chat(llm: ScriptedLLM, **kw: object) -> ChatOpenAI:
    kw.setdefault("max_retries", 0)
    return ChatOpenAI(
        base_url=llm.base_url,
        api_key="test",  # type: ignore[arg-type]
        model="fake-model",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def shared_llm() -> Iterator[ScriptedLLM]:
    # One server (one base_url) for the module: ChatOpenAI builds a new httpx client, with
    # two SSL contexts (~50 ms), for every base_url it has not seen before.
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def llm(shared_llm: ScriptedLLM) -> ScriptedLLM:
    shared_llm.reset()
    return shared_llm


@pytest.fixture
def tool_llm(llm: ScriptedLLM) -> ScriptedLLM:
    llm.tool_use = True
    return llm


# -- happy paths --------------------------------------------------------------------------


def test_plain_call_final_with_usage(llm: ScriptedLLM) -> None:
    msg = chat(llm).invoke("Write the final report")
    assert isinstance(msg, AIMessage)
    assert isinstance(msg.content, str) and msg.content.startswith("Final report:")
    assert msg.usage_metadata is not None
    prompt, completion = llm.billed_tokens()
    assert msg.usage_metadata["input_tokens"] == prompt > 0
    assert msg.usage_metadata["output_tokens"] == completion > 0
    assert msg.usage_metadata["total_tokens"] == prompt + completion
    assert msg.response_metadata["model_name"] == "fake-model"
    assert msg.response_metadata["finish_reason"] == "stop"
    assert llm.count("final") == llm.count() == 1
    (rec,) = llm.requests
    assert (rec.kind, rec.step_id, rec.status, rec.ok) == ("final", None, 200, True)
    assert rec.body["model"] == "fake-model"


def test_models_endpoint(llm: ScriptedLLM) -> None:
    with urllib.request.urlopen(f"{llm.base_url}/models", timeout=2) as resp:
        data = json.load(resp)
    assert data["data"][0]["id"] == "fake-model"
    assert llm.requests == []


def test_structured_plan(llm: ScriptedLLM) -> None:
    llm.steps = ["Alpha", "Beta"]
    plan = chat(llm).with_structured_output(Plan, method="function_calling").invoke("Plan it")
    assert isinstance(plan, Plan)
    assert [s.title for s in plan.steps] == ["Alpha", "Beta"]
    assert all(s.detail for s in plan.steps)
    (rec,) = llm.requests
    assert rec.kind == "plan"
    assert rec.body["tool_choice"] == {"type": "function", "function": {"name": "Plan"}}
    assert llm.count("plan") == 1


def test_default_plan_steps(llm: ScriptedLLM) -> None:
    plan = chat(llm).with_structured_output(Plan, method="function_calling").invoke("p")
    assert isinstance(plan, Plan)
    assert [s.title for s in plan.steps] == [
        "Survey the topic",
        "Draft the findings",
        "Polish the summary",
    ]


def test_review_scripted_verdicts(llm: ScriptedLLM) -> None:
    llm.verdicts = {"s1": ["retry", "give_up"]}
    reviewer = chat(llm).with_structured_output(StepReview, method="function_calling")
    got = [reviewer.invoke(step_msgs("s1", "Survey the topic")) for _ in range(3)]
    other = reviewer.invoke(step_msgs("s2", "Draft the findings"))
    assert [r.verdict for r in got] == ["retry", "give_up", "done"]  # type: ignore[union-attr]
    assert "Survey the topic" in got[2].summary  # type: ignore[union-attr]
    assert other.verdict == "done"  # type: ignore[union-attr]
    assert "Draft the findings" in other.summary  # type: ignore[union-attr]
    assert llm.count("review", "s1") == 3
    assert llm.count("review", "s2") == 1
    assert llm.count("review") == 4


def test_review_dict_verdict_and_reset() -> None:
    new_step = {"title": "Extra", "detail": "More work"}
    with ScriptedLLM(verdicts={"s1": [{"verdict": "replan", "new_steps": [new_step]}]}) as srv:
        reviewer = chat(srv).with_structured_output(StepReview, method="function_calling")
        first = reviewer.invoke(step_msgs("s1", "A"))
        assert first.verdict == "replan"  # type: ignore[union-attr]
        assert first.new_steps == [PlanStep(**new_step)]  # type: ignore[union-attr]
        srv.reset()  # restores the constructor's script
        assert srv.requests == []
        assert reviewer.invoke(step_msgs("s1", "A")).verdict == "replan"  # type: ignore[union-attr]


def test_act_tool_use_then_text(tool_llm: ScriptedLLM) -> None:
    model = chat(tool_llm).bind_tools([write_file])
    msgs = step_msgs("s2", "Draft the findings")
    first = model.invoke(msgs)
    assert first.response_metadata["finish_reason"] == "tool_calls"
    (call,) = first.tool_calls
    assert call["name"] == "write_file"
    assert call["args"] == {"path": "notes/s2.md", "content": "notes for Draft the findings"}
    assert call["id"] and call["id"].startswith("call_")
    second = model.invoke([*msgs, first, ToolMessage("wrote it", tool_call_id=call["id"])])
    assert second.tool_calls == []
    assert second.content == "Result of Draft the findings"
    assert tool_llm.count("act", "s2") == 2
    assert [r.kind for r in tool_llm.requests] == ["act", "act"]


def test_act_without_tool_use_answers_text(llm: ScriptedLLM) -> None:
    msg = chat(llm).bind_tools([write_file]).invoke(step_msgs("s3", "Polish the summary"))
    assert msg.tool_calls == []
    assert msg.content == "Result of Polish the summary"
    assert llm.requests[0].step_id == "s3"


def test_unique_ids(tool_llm: ScriptedLLM) -> None:
    model = chat(tool_llm).bind_tools([write_file])
    a = model.invoke(step_msgs("s1", "A"))
    b = model.invoke(step_msgs("s1", "A"))
    assert a.id != b.id
    assert a.tool_calls[0]["id"] != b.tool_calls[0]["id"]


def test_usage_fn_override(llm: ScriptedLLM) -> None:
    calls: list[str] = []

    def usage(kind: str, body: dict[str, object]) -> tuple[int, int]:
        calls.append(kind)
        return 1000, 50

    llm.usage_fn = usage
    msg = chat(llm).invoke("hi")
    assert msg.usage_metadata is not None
    assert (msg.usage_metadata["input_tokens"], msg.usage_metadata["output_tokens"]) == (1000, 50)
    assert llm.billed_tokens() == (1000, 50)
    assert calls == ["final"]


async def test_async_invoke(llm: ScriptedLLM) -> None:
    msg = await chat(llm).ainvoke("hi")
    assert str(msg.content).startswith("Final report:")
    assert llm.count("final") == 1


def test_concurrent_requests(tool_llm: ScriptedLLM) -> None:
    model = chat(tool_llm).bind_tools([write_file])
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            model.invoke(step_msgs(f"s{i}", f"Step {i}"))
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert errors == []
    assert tool_llm.count("act") == 8
    assert {r.step_id for r in tool_llm.requests} == {f"s{i}" for i in range(8)}


# -- streaming ----------------------------------------------------------------------------


def test_streaming_text_with_usage(llm: ScriptedLLM) -> None:
    chunks = list(chat(llm, stream_usage=True).stream("final please"))
    assert len(chunks) > 3  # content arrived in pieces
    agg = chunks[0]
    for c in chunks[1:]:
        agg = agg + c
    assert isinstance(agg, AIMessageChunk)
    assert str(agg.content).startswith("Final report:")
    assert agg.usage_metadata is not None
    assert (agg.usage_metadata["input_tokens"], agg.usage_metadata["output_tokens"]) == (
        llm.billed_tokens()
    )
    (rec,) = llm.requests
    assert rec.stream and rec.body["stream_options"] == {"include_usage": True}
    assert llm.count("final") == 1


def test_streaming_usage_matches_non_streaming(llm: ScriptedLLM) -> None:
    plain = chat(llm).invoke("same prompt")
    streamed = chat(llm, streaming=True, stream_usage=True).invoke("same prompt")
    assert plain.content == streamed.content
    assert plain.usage_metadata is not None and streamed.usage_metadata is not None
    assert plain.usage_metadata["total_tokens"] == streamed.usage_metadata["total_tokens"]


def test_streaming_without_stream_usage_has_no_usage(llm: ScriptedLLM) -> None:
    # With a custom base_url, langchain-openai does NOT request usage when streaming.
    msg = chat(llm, streaming=True).invoke("hi")
    assert str(msg.content).startswith("Final report:")
    assert msg.usage_metadata is None
    assert "stream_options" not in llm.requests[0].body
    assert llm.count() == 1  # the server still bills it


def test_streaming_tool_call(tool_llm: ScriptedLLM) -> None:
    model = chat(tool_llm, stream_usage=True).bind_tools([write_file])
    chunks = list(model.stream(step_msgs("s1", "Survey the topic")))
    assert len(chunks) > 3
    # bind_tools types the stream as whole messages; what arrives are chunks, summed here.
    parts = [c for c in chunks if isinstance(c, AIMessageChunk)]
    assert len(parts) == len(chunks)
    agg = parts[0]
    for c in parts[1:]:
        agg = agg + c
    (call,) = agg.tool_calls
    assert call["name"] == "write_file"
    assert call["args"] == {"path": "notes/s1.md", "content": "notes for Survey the topic"}
    assert agg.usage_metadata is not None
    assert agg.usage_metadata["input_tokens"] == tool_llm.billed_tokens()[0]


def test_streaming_structured_plan(llm: ScriptedLLM) -> None:
    structured = chat(llm, streaming=True).with_structured_output(Plan, method="function_calling")
    plan = structured.invoke("plan")
    assert isinstance(plan, Plan) and len(plan.steps) == 3
    assert llm.requests[0].stream


# -- faults -------------------------------------------------------------------------------


def test_rate_limit_fault_with_retry_after(llm: ScriptedLLM) -> None:
    llm.push(Fault(status=429, retry_after=2))
    model = chat(llm)
    with pytest.raises(openai.RateLimitError) as info:
        model.invoke("hi")
    assert isinstance(info.value, ModelRateLimitError)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "2000"
    assert info.value.code == "rate_limit_exceeded"
    assert llm.requests[0].status == 429
    assert llm.count() == 0 and llm.billed_tokens() == (0, 0)
    # consumed: next call succeeds
    assert str(model.invoke("hi").content).startswith("Final report:")
    assert llm.count() == 1 and len(llm.requests) == 2


def test_openai_retries_honour_retry_after(llm: ScriptedLLM) -> None:
    llm.push(Fault(status=429, retry_after=0.05, times=2))
    model = chat(llm, max_retries=2)
    start = time.monotonic()
    msg = model.invoke("hi")
    assert str(msg.content).startswith("Final report:")
    assert time.monotonic() - start < 2  # used Retry-After, not the exponential default
    assert [r.status for r in llm.requests] == [429, 429, 200]
    assert llm.pending_faults() == []


@pytest.mark.parametrize(
    ("fault", "exc_types", "code"),
    [
        (
            Fault(status=429, error_code="insufficient_quota"),
            (openai.RateLimitError,),
            "insufficient_quota",
        ),
        (
            Fault(status=401, error_code="invalid_api_key"),
            (openai.AuthenticationError, ModelAuthenticationError),
            "invalid_api_key",
        ),
        (
            Fault(status=400, error_code="context_length_exceeded"),
            # NB: openai 3.x puts only error.message into str(exc), so langchain-openai 1.7's
            # `"context_length_exceeded" in str(e)` check misses it: no ContextOverflowError.
            (openai.BadRequestError,),
            "context_length_exceeded",
        ),
        (Fault(status=500), (openai.InternalServerError,), None),
        (Fault(status=503, retry_after=1), (openai.InternalServerError,), None),
    ],
)
def test_error_faults(
    llm: ScriptedLLM,
    fault: Fault,
    exc_types: tuple[type[BaseException], ...],
    code: str | None,
) -> None:
    llm.push(fault)
    with pytest.raises(exc_types[0]) as info:
        chat(llm).invoke("hi")
    for exc_type in exc_types:
        assert isinstance(info.value, exc_type)
    assert isinstance(info.value, openai.APIStatusError)
    assert info.value.status_code == fault.status
    assert info.value.code == code
    body = info.value.body
    assert isinstance(body, dict) and body["type"]  # openai unwraps {"error": {...}}
    assert llm.requests[0].status == fault.status
    assert llm.count() == 0


def test_fault_kind_filter_and_times(tool_llm: ScriptedLLM) -> None:
    tool_llm.push(Fault(kind="review", status=500, times=2))
    model = chat(tool_llm)
    assert model.invoke("final").content  # not a review: untouched
    assert tool_llm.pending_faults()[0].times == 2
    reviewer = model.with_structured_output(StepReview, method="function_calling")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            reviewer.invoke(step_msgs("s1", "A"))
    review = reviewer.invoke(step_msgs("s1", "A"))
    assert review.verdict == "done"  # type: ignore[union-attr]
    assert [r.status for r in tool_llm.requests] == [200, 500, 500, 200]
    assert tool_llm.count("review") == 1
    assert tool_llm.count("review", "s1") == 1


def test_faults_are_fifo(llm: ScriptedLLM) -> None:
    llm.push(Fault(status=500))
    llm.push(Fault(status=429))
    model = chat(llm)
    with pytest.raises(openai.InternalServerError):
        model.invoke("a")
    with pytest.raises(openai.RateLimitError):
        model.invoke("b")


def test_malformed_structured_output(llm: ScriptedLLM) -> None:
    llm.push(Fault(kind="plan", malformed=True))
    planner = chat(llm).with_structured_output(Plan, method="function_calling")
    # langchain-openai 1.7 does not raise on invalid tool-call JSON: it parses to None.
    assert planner.invoke("plan") is None
    assert llm.requests[0].status == 200
    assert llm.count("plan") == 1  # a 2xx answer: counted and billed
    assert llm.billed_tokens()[1] > 0
    assert isinstance(planner.invoke("plan again"), Plan)


def test_malformed_review_include_raw(llm: ScriptedLLM) -> None:
    llm.push(Fault(kind="review", malformed=True))
    reviewer = chat(llm).with_structured_output(
        StepReview, method="function_calling", include_raw=True
    )
    out = reviewer.invoke(step_msgs("s1", "A"))
    assert isinstance(out, dict)
    assert out["parsed"] is None and out["parsing_error"] is None
    assert out["raw"].invalid_tool_calls[0]["name"] == "StepReview"


def test_malformed_act_gives_invalid_tool_call(tool_llm: ScriptedLLM) -> None:
    tool_llm.push(Fault(kind="act", malformed=True))
    msg = chat(tool_llm).bind_tools([write_file]).invoke(step_msgs("s1", "A"))
    assert msg.tool_calls == []
    assert msg.invalid_tool_calls and msg.invalid_tool_calls[0]["name"] == "write_file"


def test_cut_stream(llm: ScriptedLLM) -> None:
    llm.push(Fault(cut_stream=True))
    model = chat(llm, stream_usage=True)
    got: list[AIMessageChunk] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in model.stream("hi"):
            got.append(chunk)
    assert got  # a couple of chunks arrived before the cut
    assert not any(c.usage_metadata for c in got)
    (rec,) = llm.requests
    assert rec.status == 200 and not rec.ok
    assert llm.count() == 0 and llm.billed_tokens() == (0, 0)
    assert str(model.invoke("hi").content).startswith("Final report:")


def test_cut_non_streamed_response(llm: ScriptedLLM) -> None:
    llm.push(Fault(cut_stream=True))
    with pytest.raises(openai.APIConnectionError):
        chat(llm).invoke("hi")
    assert llm.count() == 0


def test_latency(llm: ScriptedLLM) -> None:
    model = chat(llm)
    llm.latency = 0.15
    start = time.monotonic()
    model.invoke("hi")
    assert time.monotonic() - start >= 0.15
    llm.latency = 0.0
    llm.push(Fault(delay=0.15))
    start = time.monotonic()
    model.invoke("hi")
    assert time.monotonic() - start >= 0.15
    start = time.monotonic()
    model.invoke("hi")
    assert time.monotonic() - start < 0.15
    assert llm.count() == 3


def test_hang_times_out_and_stop_is_prompt() -> None:
    server = ScriptedLLM().start()
    try:
        server.push(Fault(delay=60))
        with pytest.raises(openai.APITimeoutError):
            chat(server, timeout=0.15).invoke("hi")
        assert server.wait_for(1)
        assert server.count() == 0
    finally:
        start = time.monotonic()
        server.stop()
        assert time.monotonic() - start < 1.5


def test_dead_client_not_counted(llm: ScriptedLLM) -> None:
    llm.push(Fault(delay=0.25))
    with pytest.raises(openai.APITimeoutError):
        chat(llm, timeout=0.05).invoke("hi")
    (rec,) = llm.requests
    deadline = time.monotonic() + 2
    while rec.status is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.status == 499 and not rec.ok  # the server noticed the client had hung up
    assert llm.count() == 0 and llm.billed_tokens() == (0, 0)


def test_stop_and_restart_same_port() -> None:
    server = ScriptedLLM().start()
    model = chat(server)
    assert model.invoke("a").content
    server.stop()
    with pytest.raises(openai.APIConnectionError):
        model.invoke("b")  # even the pooled keep-alive connection is gone
    server.start()
    try:
        assert model.invoke("c").content
        assert server.count() == 2
    finally:
        server.stop()


def test_main_entrypoint() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(TESTS_DIR / "fakellm.py"), "--port", "0", "--tool-use"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("fakellm listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1]
        assert base_url.endswith("/v1")
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:
            assert json.load(resp)["object"] == "list"
    finally:
        proc.terminate()
        proc.wait(5)
