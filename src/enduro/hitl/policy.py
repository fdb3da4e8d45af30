"""Which tool calls need a person's approval and which are side effects to run exactly once.

A tool's own declaration lives in its LangChain `metadata` under the key `enduro` (set by
`requires_approval` / `side_effect` below, or by the MCP config loader); the run's context
adds to it from the command line (`--approve TOOL`, `--side-effect TOOL=POLICY`). The
declaration is read at call time from the tool and the context, never stored in the state,
so a resume with other flags applies the new ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar, cast, get_args

from enduro.context import EnduroContext

if TYPE_CHECKING:
    # Annotations only: importing langchain_core.tools costs `enduro status` ~0.5 s.
    from langchain_core.tools import BaseTool

EffectPolicy = Literal["retry", "skip", "ask"]
EFFECT_POLICIES: tuple[str, ...] = get_args(EffectPolicy)
METADATA_KEY = "enduro"
ASK_HUMAN = "ask_human"

# A string bound, so the TypeVar needs no runtime import of langchain_core.tools.
ToolT = TypeVar("ToolT", bound="BaseTool")


@dataclass(frozen=True)
class ToolPolicy:
    """What the tools node must do around one call of a tool."""

    approval: bool = False
    """Stop for a person's approve / edit / reject before the call runs."""
    side_effect: EffectPolicy | None = None
    """None: an ordinary tool. Otherwise the call is journaled before and after it runs,
    and this says what a resume does when a crash left its outcome unknown: `retry` (run
    again with the same idempotency key), `skip` (tell the model the outcome is unknown) or
    `ask` (an `unknown_outcome` interrupt)."""


def requires_approval(tool: ToolT) -> ToolT:
    """Mark `tool` so every call of it waits for a person's decision; returns the same tool."""
    _declare(tool, approval=True)
    return tool


def side_effect(tool: ToolT, policy: EffectPolicy = "retry") -> ToolT:
    """Mark `tool` as having an external side effect, run at most once per tool call id.

    The tool receives a stable idempotency key (`thread_id:tool_call_id`) in
    `config["configurable"]["enduro_idempotency_key"]`; `policy` says what happens when a
    crash leaves a call's outcome unknown (see `ToolPolicy.side_effect`).

    Raises:
        ValueError: `policy` is not one of retry, skip, ask.
    """
    _declare(tool, side_effect=check_policy(policy, tool.name))
    return tool


def check_policy(policy: str, tool: str) -> EffectPolicy:
    """`policy` if it names a side-effect policy, else a ValueError naming the choices."""
    if policy not in EFFECT_POLICIES:
        raise ValueError(
            f"side-effect policy {policy!r} for tool {tool!r} is not one of "
            f"{', '.join(EFFECT_POLICIES)}"
        )
    return cast(EffectPolicy, policy)


def _declare(tool: BaseTool, **fields: object) -> None:
    metadata = dict(tool.metadata or {})
    metadata[METADATA_KEY] = {**(metadata.get(METADATA_KEY) or {}), **fields}
    tool.metadata = metadata


def policy_for(tool: BaseTool | None, name: str, context: EnduroContext) -> ToolPolicy:
    """The tool's declaration merged with the run's flags (the flags can only add)."""
    declared = ((tool.metadata or {}).get(METADATA_KEY) or {}) if tool is not None else {}
    # `*` means every tool that acts; asking a question needs no approval of its own.
    everything = "*" in context.approve and name != ASK_HUMAN
    approval = bool(declared.get("approval")) or everything or name in context.approve
    effect = context.side_effects.get(name) or declared.get("side_effect")
    return ToolPolicy(
        approval=approval,
        side_effect=check_policy(effect, name) if effect else None,
    )
