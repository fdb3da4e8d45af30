"""Held answers (enduro.budgets.spool): kept on disk, found by the same request only, and
parsed on replay exactly as the provider's answer was."""

from __future__ import annotations

from pathlib import Path

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from enduro.budgets.spool import AnswerSpool, HeldAnswer, ReplayModel, request_key


class Review(BaseModel):
    verdict: str
    summary: str


def _answer() -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[
            {"name": "Review", "args": {"verdict": "done", "summary": "ok"}, "id": "call_1"}
        ],
        usage_metadata={"input_tokens": 12, "output_tokens": 5, "total_tokens": 17},
    )


async def test_a_held_answer_is_found_by_its_request_only_and_replays_parsed(
    tmp_path: Path,
) -> None:
    messages = [SystemMessage("review step s1"), HumanMessage("the work")]
    key = request_key("gpt-x", messages, [{"name": "Review"}])
    assert key == request_key("gpt-x", list(messages), [{"name": "Review"}])
    assert key != request_key("gpt-y", messages, [{"name": "Review"}])
    assert key != request_key("gpt-x", [*messages, HumanMessage("more")], [{"name": "Review"}])

    spool = AnswerSpool(tmp_path, "thread-1")
    assert await spool.take(key) is None
    await spool.hold(key, HeldAnswer("call-abc", 1234, _answer()))
    assert len(list((tmp_path / ".enduro-held" / "thread-1").glob("*.json"))) == 1
    assert not (tmp_path / "thread-1").exists(), "outside the thread's workspace"

    held = await AnswerSpool(tmp_path, "thread-1").take(key)  # another process, same disk
    assert held is not None
    assert (held.call_id, held.worst_nano) == ("call-abc", 1234)
    assert held.message.usage_metadata == _answer().usage_metadata
    assert await AnswerSpool(tmp_path, "thread-2").take(key) is None

    replay = ReplayModel(message=held.message)
    out = await replay.with_structured_output(
        Review, method="function_calling", include_raw=True
    ).ainvoke(messages)
    assert isinstance(out, dict), out  # include_raw=True answers {"raw", "parsed", ...}
    assert out["parsed"] == Review(verdict="done", summary="ok")
    plain = await replay.bind_tools([Review]).ainvoke(messages)
    assert plain.tool_calls[0]["args"] == {"verdict": "done", "summary": "ok"}

    await spool.forget(key)
    assert await spool.take(key) is None
