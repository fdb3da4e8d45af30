"""Pure parts of people in the loop: answers, timeouts, tool policies, the MCP config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.tools import StructuredTool

from enduro.context import EnduroContext
from enduro.errors import ConfigError, NotWaiting
from enduro.hitl.cli import choose, duration
from enduro.hitl.interrupts import BadAnswer, Decision, Pending, parse_answer
from enduro.hitl.policy import ToolPolicy, policy_for, requires_approval, side_effect
from enduro.hitl.waiting import timeout_answers
from enduro.tools.mcp import read_config


def _tool(name: str) -> StructuredTool:
    def f(x: int) -> str:
        """Echo."""
        return str(x)

    return StructuredTool.from_function(func=f, name=name)


@pytest.mark.parametrize(
    ("kind", "answer", "decision"),
    [
        ("approval", {"decision": "approve"}, Decision("approve")),
        ("approval", {"decision": "edit", "args": {"x": 2}}, Decision("edit", args={"x": 2})),
        ("approval", {"decision": "reject", "reason": "no"}, Decision("reject", text="no")),
        ("approval", "yes", Decision("approve")),
        ("approval", "not today", Decision("reject", text="not today")),
        ("question", "blue", Decision("answer", text="blue")),
        ("question", {"answer": "blue"}, Decision("answer", text="blue")),
        (
            "unknown_outcome",
            {"decision": "answer", "answer": "it ran"},
            Decision("answer", text="it ran"),
        ),
    ],
)
def test_answers(kind: str, answer: object, decision: Decision) -> None:
    assert parse_answer(kind, answer) == decision


def test_bad_answers_name_what_would_work() -> None:
    with pytest.raises(BadAnswer, match="needs `args`"):
        parse_answer("approval", {"decision": "edit"})
    with pytest.raises(BadAnswer, match="unknown decision"):
        parse_answer("approval", {"decision": "maybe"})
    with pytest.raises(BadAnswer):
        parse_answer("approval", 3)


def _pending(created: str, kind: str = "approval") -> Pending:
    return Pending("i1", kind, "t", {}, None, created)


def test_timeouts_count_from_first_seen_and_skip_foreign_interrupts() -> None:
    item = _pending("2026-01-01T00:00:00+00:00")
    epoch = 1767225600.0
    assert timeout_answers([item], None, now=epoch + 10**6) == {}
    assert timeout_answers([item], 60, now=epoch + 59) == {}
    [(key, answer)] = timeout_answers([item], 60, now=epoch + 60).items()
    assert key == "i1" and answer["decision"] == "reject" and "1 min" in answer["reason"]
    foreign = _pending("2026-01-01T00:00:00+00:00", kind="unknown")
    assert timeout_answers([foreign], 60, now=epoch + 600) == {}


def test_policy_merges_declaration_and_flags() -> None:
    plain, declared = _tool("plain"), side_effect(requires_approval(_tool("pay")), "ask")
    none = EnduroContext()
    assert policy_for(plain, "plain", none) == ToolPolicy()
    assert policy_for(declared, "pay", none) == ToolPolicy(approval=True, side_effect="ask")
    flags = EnduroContext(approve=["*"], side_effects={"plain": "skip"})
    assert policy_for(plain, "plain", flags) == ToolPolicy(approval=True, side_effect="skip")
    assert policy_for(None, "ask_human", flags).approval is False
    with pytest.raises(ValueError, match="not one of retry, skip, ask"):
        side_effect(_tool("x"), "twice")  # type: ignore[arg-type]


def test_choose_needs_an_id_when_several_wait() -> None:
    a, b = (
        Pending("a", "approval", "t", {}, None, None),
        Pending("b", "question", "ask_human", None, "q?", None),
    )
    with pytest.raises(NotWaiting, match="pick one with --id"):
        choose("T", [a, b], None, "approve")
    assert choose("T", [a, b], "a", "approve") is a
    with pytest.raises(NotWaiting, match="is a question"):
        choose("T", [a, b], "b", "approve")
    with pytest.raises(NotWaiting, match="not waiting"):
        choose("T", [], None, "reject")
    assert duration("90s") == 90 and duration("2h") == 7200 and duration("1.5d") == 129600


def test_mcp_config_resolves_variables_and_checks_settings(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    spec = {
        "mcpServers": {
            "local": {"command": "srv", "args": ["--k", "${KEY}"], "approve": ["rm"]},
            "remote": {"url": "https://x/mcp", "headers": {"Authorization": "Bearer ${KEY}"}},
        }
    }
    path.write_text(json.dumps(spec))
    local, remote = read_config(str(path), {"KEY": "s3cret"})
    assert local.connection == {"transport": "stdio", "command": "srv", "args": ["--k", "s3cret"]}
    assert local.settings == {"approve": ["rm"]}
    assert remote.connection["headers"] == {"Authorization": "Bearer s3cret"}
    assert "s3cret" not in path.read_text()
    with pytest.raises(ConfigError, match=r"\$\{KEY\} is not set"):
        read_config(str(path), {})
    path.write_text(json.dumps({"mcpServers": {"a": {"url": "u", "sideEffect": "often"}}}))
    with pytest.raises(ConfigError, match="sideEffect 'often'"):
        read_config(str(path), {})
    path.write_text(json.dumps({"mcpServers": {"a": {"args": []}}}))
    with pytest.raises(ConfigError, match="give `command`"):
        read_config(str(path), {})
