"""The interrupts enduro raises, and the answers it accepts, in one place.

Every stop for a person is a LangGraph `interrupt()` raised inside a `tools` task, so
Studio, the Agent Server and `langgraph_sdk` show and resume exactly what the CLI does. Each
tool call is its own task (`Send`), so several calls of one batch wait at once, each with
its own interrupt id (LangGraph derives it from the task's namespace), and a resume map
`{interrupt_id: answer}` answers any of them.

The interrupt's value (what a person sees):
    {"kind": "approval" | "question" | "unknown_outcome", "tool": str, "args": {...} | None,
     "question": str | None, "tool_call_id": str, "created_at": ISO 8601}

The answer (`Command(resume={id: answer})`), a JSON object:
    {"decision": "approve"}                      run the call as the model wrote it
    {"decision": "edit", "args": {...}}          run it with these arguments instead
    {"decision": "reject", "reason": "…"}        do not run it; the model sees the reason
    {"decision": "answer", "answer": "…"}        a question's answer, or what happened to
                                                 a call whose outcome was unknown
A bare string is accepted too (what a person types in Studio): the answer to a question;
for an approval `approve`/`yes`/`ok` approve and anything else rejects with the text as
the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Kind = Literal["approval", "question", "unknown_outcome"]
Action = Literal["approve", "edit", "reject", "answer"]
KINDS: tuple[str, ...] = ("approval", "question", "unknown_outcome")
_YES = {"approve", "approved", "yes", "y", "ok"}


@dataclass(frozen=True)
class Decision:
    """A person's answer to one interrupt."""

    action: Action
    args: dict[str, Any] | None = None
    """New arguments, for `edit`."""
    text: str | None = None
    """The rejection reason, or the answer."""


class BadAnswer(ValueError):
    """An answer that fits no decision; the message says what would."""


def now_iso() -> str:
    """The current UTC time as ISO 8601 (when an interrupt was raised)."""
    return datetime.fromtimestamp(time.time(), tz=UTC).isoformat()


def ask(value: dict[str, Any]) -> Decision:
    """Stop the thread with `value`, or return the person's decision after a resume.

    The first call raises LangGraph's interrupt; when the task runs again after a resume it returns
    the decision. Must run inside a graph task.
    """
    # Imported here: `langgraph.types` pulls in LangChain's tracers (~0.5 s), and this
    # module is also read by `enduro status`, which must start fast (bench/cli.py).
    from langgraph.types import interrupt

    return parse_answer(str(value.get("kind")), interrupt(value))


def approval_value(tool: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    """The interrupt value asking a person to approve, edit or reject one tool call.

    Shape (every kind shares it): `{"kind": "approval", "tool", "args", "question":
    None, "tool_call_id", ...}`; the status JSON and Studio show it as is.
    """
    return {
        "kind": "approval",
        "tool": tool,
        "args": args,
        "question": None,
        "tool_call_id": call_id,
        "created_at": now_iso(),
    }


def question_value(question: str, call_id: str | None) -> dict[str, Any]:
    """The interrupt value of the model's `ask_human` question (`kind` "question")."""
    return {
        "kind": "question",
        "tool": "ask_human",
        "args": None,
        "question": question,
        "tool_call_id": call_id,
        "created_at": now_iso(),
    }


def unknown_outcome_value(tool: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    """The interrupt value asking what to do with a side-effecting call cut off mid-run.

    Raised under the `ask` policy when the journal shows the call started but never
    finished, so whether its effect happened is unknown; the question says so.
    """
    return {
        "kind": "unknown_outcome",
        "tool": tool,
        "args": args,
        "question": (
            f"The process stopped while {tool} was running, after it started and before its "
            "result was recorded, so it may or may not have taken effect. Approve to run it "
            "again, reject to leave it, or answer with what happened."
        ),
        "tool_call_id": call_id,
        "created_at": now_iso(),
    }


def parse_answer(kind: str, answer: Any) -> Decision:
    """The decision an answer stands for (see the module docstring).

    Raises:
        BadAnswer: the answer is neither a known decision object nor a string.
    """
    if isinstance(answer, str):
        if kind == "question":
            return Decision("answer", text=answer)
        if answer.strip().lower() in _YES:
            return Decision("approve")
        return Decision("reject", text=answer)
    if not isinstance(answer, dict):
        raise BadAnswer(f"an answer must be a string or an object, got {answer!r}")
    action = answer.get("decision")
    if action == "approve":
        return Decision("approve")
    if action == "edit":
        args = answer.get("args")
        if not isinstance(args, dict):
            raise BadAnswer(f"an edit needs `args`, a JSON object; got {args!r}")
        return Decision("edit", args=args)
    if action == "reject":
        return Decision("reject", text=str(answer.get("reason") or "") or None)
    if action == "answer" or "answer" in answer:
        return Decision("answer", text=str(answer.get("answer") or ""))
    raise BadAnswer(
        f"unknown decision {action!r}: use approve, edit (with args), reject (with reason) "
        "or answer (with answer)"
    )


def rejection_text(tool: str, reason: str | None) -> str:
    """What the model sees instead of a rejected call's result."""
    why = f": {reason}" if reason else " (no reason given)"
    return (
        f"Not run: a person rejected this {tool} call{why}. Do not repeat it unchanged; "
        "adapt your approach."
    )


@dataclass(frozen=True)
class Pending:
    """An interrupt waiting for an answer, as the status JSON shows it."""

    id: str
    kind: str
    tool: str | None
    args: Any
    question: str | None
    created_at: str | None

    def to_dict(self) -> dict[str, Any]:
        """The interrupt as one item of the status JSON's `interrupts` list."""
        return {
            "id": self.id,
            "kind": self.kind,
            "tool": self.tool,
            "args": self.args,
            "question": self.question,
            "created_at": self.created_at,
        }


def pending_of(interrupts: Any) -> list[Pending]:
    """The pending interrupts of a `StateSnapshot.interrupts` tuple.

    One raised by code that is not enduro's (a user's own node) has kind `unknown` and its value as
    the question.
    """
    out: list[Pending] = []
    for item in interrupts or ():
        value = getattr(item, "value", None)
        if isinstance(value, dict) and value.get("kind") in KINDS:
            out.append(
                Pending(
                    id=item.id,
                    kind=str(value["kind"]),
                    tool=value.get("tool"),
                    args=value.get("args") if value["kind"] != "question" else None,
                    question=value.get("question"),
                    created_at=value.get("created_at"),
                )
            )
        else:
            out.append(Pending(item.id, "unknown", None, None, str(value), None))
    return out
