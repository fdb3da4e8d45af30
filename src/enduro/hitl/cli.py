"""Command-line side of humans in the loop.

The run flags (`--approve`, `--side-effect`, `--approval-timeout`, `--post-host`) and the
answers `enduro approve | reject | answer` build for a waiting thread.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from enduro.errors import ConfigError, NotWaiting
from enduro.hitl.interrupts import Pending
from enduro.hitl.policy import EFFECT_POLICIES

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
ANSWER_COMMANDS = ("approve", "reject", "answer")


def duration(text: str) -> float:
    """Argparse type: `90s`, `30m`, `2h`, `7d` or plain seconds, > 0."""
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: use e.g. 90s, 30m, 2h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _effect(text: str) -> tuple[str, str]:
    tool, _, policy = text.partition("=")
    policy = policy or "retry"
    if not tool or policy not in EFFECT_POLICIES:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use TOOL or TOOL=POLICY with POLICY one of {', '.join(EFFECT_POLICIES)}"
        )
    return tool, policy


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` / `resume`."""
    group = parser.add_argument_group("people and side effects")
    group.add_argument(
        "--approve",
        action="append",
        metavar="TOOL",
        help="every call of TOOL waits for `enduro approve` (repeatable; '*' = every tool)",
    )
    group.add_argument(
        "--side-effect",
        action="append",
        type=_effect,
        metavar="TOOL[=POLICY]",
        help="TOOL acts on the outside world: run each call at most once; POLICY (retry, "
        "skip, ask; default retry) says what to do when a crash left its outcome unknown",
    )
    group.add_argument(
        "--approval-timeout",
        type=duration,
        metavar="DURATION",
        help="reject approvals (and leave questions unanswered) nobody answered within "
        "DURATION (30m, 2h, 7d); applied when the thread is next touched",
    )
    group.add_argument(
        "--post-host",
        action="append",
        metavar="HOST",
        help="let http_post send to HOST (repeatable); without it http_post is not offered",
    )
    group.add_argument(
        "--mcp-config",
        metavar="FILE",
        help="load tools from the MCP servers of FILE (`mcpServers` JSON), named server__tool",
    )


def run_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Context overrides from these flags; a flag given on resume replaces the stored list."""
    out: dict[str, Any] = {}
    if args.approve:
        out["approve"] = list(args.approve)
    if args.side_effect:
        out["side_effects"] = dict(args.side_effect)
    if args.approval_timeout is not None:
        out["approval_timeout_seconds"] = args.approval_timeout
    if args.post_host:
        out["post_hosts"] = [h.strip().lower() for h in args.post_host]
    if args.mcp_config:
        # The path only (resolved, so a worker elsewhere in the tree finds it); never the
        # contents, whose ${VAR}s may resolve to secrets.
        out["mcp_config"] = str(Path(args.mcp_config).resolve())
    return out


def add_commands(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add `approve`, `reject` and `answer` to the CLI's subcommands.

    They resume the thread in the foreground, so they take `resume`'s options too.
    """
    helps = {
        "approve": "approve a waiting tool call (optionally with edited arguments)",
        "reject": "reject a waiting tool call; the model sees the reason",
        "answer": "answer a waiting question",
    }
    for name in ANSWER_COMMANDS:
        p = sub.add_parser(name, parents=parents, help=helps[name])
        p.add_argument("thread_id")
        p.add_argument("--id", dest="interrupt_id", help="which interrupt (see `enduro status`)")
        if name == "approve":
            p.add_argument("--edit", metavar="JSON", help="run the call with these arguments")
        elif name == "reject":
            p.add_argument("--reason", help="why; the model reads it as the tool's result")
        else:
            p.add_argument("text", help="the answer")


def answer_of(args: argparse.Namespace) -> dict[str, Any]:
    """The resume value `approve` / `reject` / `answer` stand for."""
    if args.command == "approve":
        if args.edit is None:
            return {"decision": "approve"}
        try:
            edited = json.loads(args.edit)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--edit {args.edit!r} is not JSON: {exc}") from None
        if not isinstance(edited, dict):
            raise ConfigError(f"--edit must be a JSON object of arguments, got {args.edit!r}")
        return {"decision": "edit", "args": edited}
    if args.command == "reject":
        return {"decision": "reject", "reason": args.reason}
    return {"decision": "answer", "answer": args.text}


def choose(thread_id: str, pending: list[Pending], wanted: str | None, command: str) -> Pending:
    """The interrupt `command` answers: `--id`, or the only one pending.

    Raises:
        NotWaiting: nothing pending, an unknown id, several pending and no `--id`, or a
            command that does not fit the interrupt's kind.
    """
    item = _pick(thread_id, pending, wanted)
    if command == "approve" and item.kind == "question":
        raise NotWaiting(f"{describe(item)} is a question: `enduro answer {thread_id} TEXT`")
    if command == "answer" and item.kind == "approval":
        raise NotWaiting(
            f"{describe(item)} waits for approval: `enduro approve {thread_id}` or "
            f"`enduro reject {thread_id} --reason TEXT`"
        )
    return item


def _pick(thread_id: str, pending: list[Pending], wanted: str | None) -> Pending:
    if not pending:
        raise NotWaiting(
            f"thread {thread_id!r} is not waiting for anyone: `enduro status {thread_id}` "
            "shows where it stands"
        )
    if wanted is not None:
        for item in pending:
            if item.id == wanted:
                return item
        raise NotWaiting(
            f"no pending interrupt {wanted!r} on thread {thread_id!r}; pending: "
            + ", ".join(describe(p) for p in pending)
        )
    if len(pending) > 1:
        raise NotWaiting(
            f"thread {thread_id!r} waits on {len(pending)} interrupts; pick one with --id: "
            + ", ".join(describe(p) for p in pending)
        )
    return pending[0]


def pending_from_json(items: list[dict[str, Any]]) -> list[Pending]:
    """The status JSON's `interrupts` as `Pending` objects."""
    return [
        Pending(
            id=str(item["id"]),
            kind=str(item["kind"]),
            tool=item.get("tool"),
            args=item.get("args"),
            question=item.get("question"),
            created_at=item.get("created_at"),
        )
        for item in items
    ]


def describe(item: Pending) -> str:
    """One line naming a pending interrupt for the CLI: its id, kind and tool (or question)."""
    what = item.tool or "?"
    if item.kind == "question":
        return f"{item.id} (question: {item.question})"
    return f"{item.id} ({item.kind} of {what})"


def waiting_help(thread_id: str, pending: list[Pending]) -> str:
    """What a person reads when a run stops to wait (stderr)."""
    lines = [f"waiting for a person ({len(pending)} pending):"]
    for item in pending:
        lines.append(f"  {describe(item)}")
        if item.kind == "approval" and item.args is not None:
            lines.append(f"    args: {json.dumps(item.args)[:300]}")
    flag = " --id ID" if len(pending) > 1 else ""
    kinds = {item.kind for item in pending}
    commands = []
    if kinds & {"approval", "unknown_outcome", "unknown"}:
        commands.append(f"enduro approve {thread_id}{flag} [--edit JSON]")
    commands.append(f"enduro reject {thread_id}{flag} [--reason TEXT]")
    if kinds & {"question", "unknown_outcome", "unknown"}:
        commands.append(f"enduro answer {thread_id}{flag} TEXT")
    lines.append("answer with: " + " | ".join(commands))
    return "\n".join(lines)
