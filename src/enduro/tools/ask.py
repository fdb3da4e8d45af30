"""ask_human: the model asks a person a question and gets the answer as the tool's result.

The question is a LangGraph interrupt (kind `question`), so the thread stops, holds no
process while it waits, and resumes with `enduro answer THREAD_ID TEXT`, Studio or
`Command(resume=…)` through the SDK.
"""

from __future__ import annotations

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from enduro.hitl.interrupts import ask, question_value
from enduro.hitl.policy import ASK_HUMAN


class _AskArgs(BaseModel):
    question: str = Field(description="The question, self-contained: the person sees only it.")


async def _ask_human(question: str, config: RunnableConfig) -> str:
    call_id = (config.get("configurable") or {}).get("enduro_tool_call_id")
    decision = ask(question_value(question, call_id))
    if decision.action == "answer":
        return decision.text or "(the person answered with nothing)"
    why = f" ({decision.text})" if decision.text else ""
    return f"No answer from a person{why}. Decide yourself and say what you assumed."


def make_ask_human_tool() -> BaseTool:
    """The built-in ask_human tool."""
    return StructuredTool.from_function(
        coroutine=_ask_human,
        name=ASK_HUMAN,
        description=(
            "Ask a person a question when you are stuck or need a decision only they can "
            "make. The run pauses until they answer (possibly hours); use it sparingly."
        ),
        args_schema=_AskArgs,
    )
