"""Growth bench: bytes stored per thread and time per step over a long run, enduro side by side
with raw LangGraph (an `add_messages` agent on AsyncPostgresSaver) on the same fake workload.

    .venv/bin/python bench/growth.py                 # 2,000 iterations
    .venv/bin/python bench/growth.py --quick         # 200 iterations
    .venv/bin/python bench/growth.py --iterations 500 --database-url postgresql://…

No network model: an in-process fake chat model answers every call deterministically, and
both sides get the same answers. An iteration is one act (agent) model call. Each step of
the workload is: act → a `write_file` tool call (about 1.2 KB of content in its arguments,
about 1.3 KB of tool result) → act → a text answer (about 500 characters); enduro then
reviews the step (reflect, `StepReview` "done") and the baseline appends the next
instruction as a human message.

enduro's plan node caps a plan at 8 steps (`MAX_PLAN_STEPS`), so the fake reviewer answers
`replan` with 12 new steps when it reviews the last step of the plan, and the bench raises
the `max_replans` context knob so those replans are accepted (no monkeypatching).

Both sides run in one process, one after the other, in segments that stop at the measuring
points. enduro: `advance_thread` on one thread, each segment ended by a drain request
(RunControl, the SIGTERM path) right after the act call that reaches the point, so the next
segment continues the pending tasks and nothing is added to the state; `--stop limit`
raises `max_iterations` instead, so each segment ends in finish and the next re-enters
through plan (the `enduro resume --max-iterations` path). Baseline: a `limit` in its state.
Retention runs as the runner does it (`--keep`, default enduro's).

At each point the bench reads, for the thread's id, every row of every table in the bench's
schema that has a `thread_id` column (LangGraph's checkpoints, checkpoint_blobs,
checkpoint_writes and enduro's own tables) and sums `pg_column_size` over its columns
(bytes as stored, after TOAST compression). Time per step is the mean wall time
between consecutive act calls over the last `--window` iterations before the point (never
across a segment boundary), so it covers everything a step does: model calls, tools,
checkpoint writes and, for enduro, retention pruning.

The run happens in a fresh schema (`bench_growth_<hex>`) that is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

import langgraph.version
import psycopg
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode
from langgraph.runtime import RunControl
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from enduro.context import ContextOverrides, EnduroContext
from enduro.runner import DEFAULT_KEEP_CHECKPOINTS, advance_thread, create_run
from enduro.state import MAX_PLAN_STEPS
from enduro.storage import open_backend

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
GOAL = (
    "Survey the field notes in the archive and write one short note per topic into the "
    "workspace, then keep going with the next topics."
)
WORKSPACE_KEY = "enduro_workspace"  # the config key enduro's tools node sets for tools

# Sizes of the fake answers, in characters.
FILE_CHARS = 1200  # content of each write_file call (the tool echoes it back)
ANSWER_CHARS = 500  # act's text answer that ends a step
SUMMARY_CHARS = 250  # the reviewer's step summary
DETAIL_CHARS = 150  # each plan step's detail
FINAL_CHARS = 500  # finish's report


# --- deterministic text ------------------------------------------------------------------

_SYLLABLES = (
    "ka", "lo", "mi", "ren", "tor", "ash", "vel", "dun", "pri", "sel",
    "op", "ur", "ben", "cha", "ix", "mon", "tal", "qua", "zer", "fe",
)  # fmt: skip


def _vocabulary(size: int = 2000) -> list[str]:
    rng = random.Random(7)
    return ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 4))) for _ in range(size)]


_VOCABULARY = _vocabulary()


def prose(seed: str, chars: int) -> str:
    """`chars` characters of word salad with sentences, the same for the same seed: realistic
    enough that TOAST compression does about what it does on real text."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < chars:
        sentence = [rng.choice(_VOCABULARY) for _ in range(rng.randint(6, 16))]
        text = " ".join(sentence).capitalize() + "."
        words.append(text)
        length += len(text) + 1
    return " ".join(words)[:chars]


# --- the fake model ----------------------------------------------------------------------


def _tool_name(tool: Any) -> str:
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, type):
        return tool.__name__
    return str(convert_to_openai_tool(tool)["function"]["name"])


def _chars(messages: Sequence[BaseMessage]) -> int:
    total = 0
    for m in messages:
        total += len(m.content) if isinstance(m.content, str) else len(json.dumps(m.content))
        if isinstance(m, AIMessage):
            total += sum(len(json.dumps(c["args"])) for c in m.tool_calls)
    return total


_STEP_UNDER_REVIEW = re.compile(r"Current step \[s(\d+)\]")


class BenchModel(BaseChatModel):
    """Answers enduro's plan / act / reflect / finish calls and the baseline agent's calls.

    The kind of call is told by the bound tools: `Plan` or `StepReview` (structured output),
    other tools (act / agent), none (finish). An act whose last message is a tool result
    answers in text, otherwise it calls write_file."""

    steps_per_plan: int = MAX_PLAN_STEPS
    planned: int = 0
    acts: int = 0
    act_times: list[float] = Field(default_factory=list)
    act_prompt_chars: list[int] = Field(default_factory=list)
    calls: dict[str, int] = Field(default_factory=dict)

    @property
    def _llm_type(self) -> str:
        return "bench-fake"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        names = [_tool_name(t) for t in tools]
        return self.bind(tool_names=names, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        names: list[str] = kwargs.get("tool_names") or []
        if "Plan" in names:
            kind, answer = "plan", self._plan()
        elif "StepReview" in names:
            kind, answer = "reflect", self._review(messages)
        elif names:
            kind, answer = "act", self._act(messages)
        else:
            kind, answer = "final", AIMessage(prose(f"final:{self.acts}", FINAL_CHARS))
        self.calls[kind] = self.calls.get(kind, 0) + 1
        prompt = _chars(messages)
        out = _chars([answer])
        answer.usage_metadata = {
            "input_tokens": prompt // 4,
            "output_tokens": out // 4,
            "total_tokens": (prompt + out) // 4,
        }
        return ChatResult(generations=[ChatGeneration(message=answer)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, None, **kwargs)

    def _new_steps(self) -> list[dict[str, str]]:
        first = self.planned + 1
        self.planned += self.steps_per_plan
        return [
            {"title": f"Write note {n} of the survey", "detail": prose(f"detail:{n}", DETAIL_CHARS)}
            for n in range(first, self.planned + 1)
        ]

    def _plan(self) -> AIMessage:
        return _call("Plan", {"steps": self._new_steps()}, f"plan{self.planned}")

    def _review(self, messages: list[BaseMessage]) -> AIMessage:
        found = _STEP_UNDER_REVIEW.search(messages[0].text if messages else "")
        step = int(found.group(1)) if found else 0
        args: dict[str, Any] = {
            "verdict": "done",
            "summary": prose(f"summary:{step}", SUMMARY_CHARS),
        }
        if step >= self.planned:
            # The last step of the plan: extend it (enduro caps one plan at MAX_PLAN_STEPS).
            args["verdict"] = "replan"
            args["new_steps"] = self._new_steps()
        return _call("StepReview", args, f"review{step}")

    def _act(self, messages: list[BaseMessage]) -> AIMessage:
        self.act_times.append(time.perf_counter())
        self.act_prompt_chars.append(_chars(messages))
        self.acts += 1
        n = self.acts
        if messages and isinstance(messages[-1], ToolMessage):
            return AIMessage(prose(f"answer:{n}", ANSWER_CHARS))
        args = {"path": f"notes/{n:05d}.md", "content": prose(f"file:{n}", FILE_CHARS)}
        return _call("write_file", args, f"act{n}", text="Writing the note for this step.")


def _call(name: str, args: dict[str, Any], call_id: str, text: str = "") -> AIMessage:
    return AIMessage(
        text,
        tool_calls=[{"name": name, "args": args, "id": f"call_{call_id}", "type": "tool_call"}],
    )


# --- the tool both sides use -------------------------------------------------------------


class _WriteArgs(BaseModel):
    path: str = Field(description="File path relative to the workspace root.")
    content: str = Field(description="Text to write.")


def _write(root: str, path: str, content: str) -> None:
    target = Path(root) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")


async def _write_file(config: RunnableConfig, path: str, content: str) -> str:
    root = (config.get("configurable") or {})[WORKSPACE_KEY]
    await asyncio.to_thread(_write, root, path, content)
    # Read back, as a careful agent's tool would: a realistic 1-2 KB tool result.
    return f"Wrote {len(content)} characters to {path}. Read back:\n{content}"


def _write_file_sync(config: RunnableConfig, path: str, content: str) -> str:
    raise NotImplementedError("the bench runs async")


def bench_tools() -> list[BaseTool]:
    return [
        StructuredTool.from_function(
            func=_write_file_sync,
            coroutine=_write_file,
            name="write_file",
            description="Create or overwrite a text file in your workspace.",
            args_schema=_WriteArgs,
        )
    ]


# --- the baseline: raw LangGraph ---------------------------------------------------------


class BaselineState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    iterations: int
    limit: int
    step: int


BASELINE_SYSTEM = "You are a diligent autonomous agent. Use tools when they help."


def build_baseline(model: BenchModel, tools: list[BaseTool], checkpointer: Any) -> Any:
    bound = model.bind_tools(tools)

    async def agent(state: BaselineState) -> dict[str, Any]:
        answer = await bound.ainvoke([SystemMessage(BASELINE_SYSTEM), *state["messages"]])
        return {"messages": [answer], "iterations": state.get("iterations", 0) + 1}

    def next_step(state: BaselineState) -> dict[str, Any]:
        step = state.get("step", 0) + 1
        return {"messages": [HumanMessage(f"Work on step s{step} now.")], "step": step}

    def gate(state: BaselineState) -> Literal["agent", "next_step", "__end__"]:
        if state.get("iterations", 0) >= state["limit"]:
            return END
        messages = state.get("messages") or []
        return "agent" if messages and isinstance(messages[-1], ToolMessage) else "next_step"

    def after_agent(state: BaselineState) -> Literal["tools", "agent", "next_step", "__end__"]:
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            return "tools"
        return gate(state)

    builder = StateGraph(BaselineState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_node("next_step", next_step)
    builder.add_conditional_edges(START, gate, ["agent", "next_step", END])
    builder.add_conditional_edges("agent", after_agent, ["tools", "agent", "next_step", END])
    builder.add_conditional_edges("tools", gate, ["agent", "next_step", END])
    builder.add_edge("next_step", "agent")
    return builder.compile(checkpointer=checkpointer, name="baseline")


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Sample:
    iteration: int
    bytes: int
    rows: int
    last_checkpoint_bytes: int
    ms_per_step: float
    prompt_chars: int


async def thread_tables(conn: psycopg.AsyncConnection[Any], schema: str) -> dict[str, list[str]]:
    """Every table of the schema with a thread_id column, and its columns."""
    cur = await conn.execute(
        "SELECT c.table_name, array_agg(c.column_name::text ORDER BY c.ordinal_position) AS cols"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE' GROUP BY c.table_name",
        (schema,),
    )
    rows = await cur.fetchall()
    return {r["table_name"]: r["cols"] for r in rows if "thread_id" in r["cols"]}


async def stored(
    conn: psycopg.AsyncConnection[Any], schema: str, thread_id: str
) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """(bytes, rows, per table) stored for the thread, as `pg_column_size` sums."""
    per_table: dict[str, tuple[int, int]] = {}
    for table, cols in sorted((await thread_tables(conn, schema)).items()):
        size = " + ".join(f'coalesce(pg_column_size("{c}"), 0)' for c in cols)
        cur = await conn.execute(
            f'SELECT count(*) AS n, coalesce(sum({size}), 0) AS b FROM "{schema}"."{table}"'
            " WHERE thread_id = %s",
            (thread_id,),
        )
        row = await cur.fetchone()
        assert row is not None
        per_table[table] = (int(row["b"]), int(row["n"]))
    return (
        sum(b for b, _ in per_table.values()),
        sum(n for _, n in per_table.values()),
        per_table,
    )


async def last_checkpoint_bytes(conn: psycopg.AsyncConnection[Any], thread_id: str) -> int:
    """What the newest checkpoint costs: its row plus the blobs its channel versions name."""
    cur = await conn.execute(
        "SELECT pg_column_size(c.checkpoint) + pg_column_size(c.metadata) + coalesce(("
        "  SELECT sum(pg_column_size(b.blob)) FROM checkpoint_blobs b"
        "  WHERE b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns"
        "  AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version), 0) AS b"
        " FROM checkpoints c WHERE c.thread_id = %s AND c.checkpoint_ns = ''"
        " ORDER BY c.checkpoint_id DESC LIMIT 1",
        (thread_id,),
    )
    row = await cur.fetchone()
    return int(row["b"]) if row else 0


async def checkpoint_breakdown(
    conn: psycopg.AsyncConnection[Any], thread_id: str
) -> list[tuple[str, int, int]]:
    """Where the newest checkpoint's bytes are: (what, raw bytes, stored bytes), largest
    first. Values the saver keeps inline in the `checkpoint` JSONB are stored once per
    checkpoint row; blobs once per channel version."""
    cur = await conn.execute(
        "SELECT 'inline ' || kv.key AS what, octet_length(kv.value::text) AS raw,"
        " pg_column_size(kv.value) AS stored"
        " FROM (SELECT checkpoint FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = ''"
        "  ORDER BY checkpoint_id DESC LIMIT 1) c,"
        " jsonb_each(c.checkpoint -> 'channel_values') kv"
        " UNION ALL"
        " SELECT 'blob ' || b.channel, octet_length(b.blob), pg_column_size(b.blob)"
        " FROM (SELECT thread_id, checkpoint FROM checkpoints WHERE thread_id = %s"
        "  AND checkpoint_ns = '' ORDER BY checkpoint_id DESC LIMIT 1) c"
        " JOIN checkpoint_blobs b ON b.thread_id = c.thread_id AND b.checkpoint_ns = ''"
        " AND c.checkpoint -> 'channel_versions' ->> b.channel = b.version"
        " ORDER BY raw DESC",
        (thread_id, thread_id),
    )
    return [(r["what"], int(r["raw"] or 0), int(r["stored"] or 0)) for r in await cur.fetchall()]


def window_ms(times: list[float], segment_start: int, window: int) -> float:
    """Mean ms between consecutive act calls over the last `window` iterations of the
    current segment."""
    recent = times[max(segment_start, len(times) - window - 1) :]
    if len(recent) < 2:
        return float("nan")
    return (recent[-1] - recent[0]) * 1000 / (len(recent) - 1)


# --- the two sides -----------------------------------------------------------------------


class Side:
    name: str
    thread_id: str
    model: BenchModel

    def __init__(self, url: str, workspace: Path, window: int) -> None:
        self.url = url
        self.workspace = workspace
        self.window = window
        self.model = BenchModel()
        self.tools = bench_tools()
        self.seconds = 0.0

    async def open(self, iterations: int) -> None: ...

    async def close(self) -> None: ...

    async def _advance(self, iteration: int) -> None:
        raise NotImplementedError

    async def advance_to(self, iteration: int) -> float:
        """Run until `iteration` act calls in all; the mean ms/step of the recent window."""
        start = len(self.model.act_times)
        started = time.perf_counter()
        await self._advance(iteration)
        self.seconds += time.perf_counter() - started
        if self.model.acts != iteration:
            raise RuntimeError(f"{self.name}: {self.model.acts} act calls, wanted {iteration}")
        return window_ms(self.model.act_times, start, self.window)


class EnduroSide(Side):
    """One enduro thread advanced by `advance_thread` in segments.

    stop="drain" ends each segment with a drain request (RunControl) right after the act
    call that reaches the point, the path a SIGTERM takes: the thread pauses at a super-step
    boundary and the next segment continues its pending tasks. stop="limit" raises
    `max_iterations` each segment instead, so each segment ends in finish (report written)
    and the next one re-enters through plan: the `enduro resume --max-iterations` path."""

    name = "enduro"

    def __init__(self, url: str, workspace: Path, window: int, keep: int, stop: str) -> None:
        super().__init__(url, workspace, window)
        self.keep = keep
        self.stop = stop

    async def open(self, iterations: int) -> None:
        context = EnduroContext(
            model="bench-fake",
            workspace=str(self.workspace),
            # With drains this is only a safety net: the last drain comes first.
            max_iterations=iterations,
            max_replans=1_000_000,
        )
        async with open_backend(self.url) as backend:
            self.thread_id = await create_run(backend, GOAL, context)

    async def _advance(self, iteration: int) -> None:
        control = RunControl()
        overrides = ContextOverrides()
        on_update: Callable[[dict[str, Any]], None] | None = None
        if self.stop == "limit":
            overrides = ContextOverrides(max_iterations=iteration)
            expected = ("budget_exhausted", "max_iterations")
        else:

            def on_update(update: dict[str, Any]) -> None:
                if self.model.acts >= iteration:
                    control.request_drain("bench")

            expected = ("paused", "bench")
        outcome = await advance_thread(
            self.thread_id,
            database_url=self.url,
            model=self.model,
            tools=self.tools,
            overrides=overrides,
            control=control,
            on_update=on_update,
            keep_checkpoints=self.keep,
        )
        if (outcome.status, outcome.stop_reason) != expected:
            raise RuntimeError(f"enduro segment ended {outcome}, expected {expected}")


class BaselineSide(Side):
    name = "baseline"
    pool: AsyncConnectionPool[Any]

    async def open(self, iterations: int) -> None:
        self.pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=4,
            open=False,
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": 0},
        )
        await self.pool.open(wait=True)
        saver = AsyncPostgresSaver(self.pool)  # type: ignore[arg-type]
        await saver.setup()
        self.graph = build_baseline(self.model, self.tools, saver)
        self.thread_id = f"baseline-{uuid.uuid4().hex[:12]}"
        self.started = False

    async def close(self) -> None:
        await self.pool.close()

    async def _advance(self, iteration: int) -> None:
        config: RunnableConfig = {
            "configurable": {"thread_id": self.thread_id, WORKSPACE_KEY: str(self.workspace)},
            "recursion_limit": 10_000_000,
        }
        graph_input: dict[str, Any] = {"limit": iteration}
        if not self.started:
            graph_input |= {"messages": [HumanMessage(GOAL)], "iterations": 0, "step": 0}
            self.started = True
        async for _ in self.graph.astream(
            graph_input, config, durability="sync", stream_mode="updates"
        ):
            pass


# --- the run -----------------------------------------------------------------------------


def measuring_points(iterations: int) -> list[int]:
    candidates = {5, 50, iterations // 10, iterations // 4, iterations // 2, 3 * iterations // 4}
    return sorted(p for p in candidates | {iterations} if 0 < p <= iterations)


def schema_url(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GB"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))


async def run(args: argparse.Namespace) -> int:
    iterations: int = args.iterations
    points = measuring_points(iterations)
    schema = f"bench_growth_{uuid.uuid4().hex[:10]}"
    admin_url: str = args.database_url
    url = schema_url(admin_url, schema)
    scratch = Path(tempfile.mkdtemp(prefix="enduro-bench-"))
    print(f"enduro growth bench: {iterations} iterations, measured at {points}", flush=True)
    print(
        f"python {sys.version.split()[0]} · langgraph {langgraph.version.__version__} · "
        f"schema {schema} (dropped at the end) · enduro keep_checkpoints={args.keep} · "
        f"window {args.window} iterations",
        flush=True,
    )
    print(
        f"workload per step: act → write_file ({FILE_CHARS} chars; result ~{FILE_CHARS + 60}) "
        f"→ act → text ({ANSWER_CHARS} chars); enduro adds reflect (summary {SUMMARY_CHARS} "
        f"chars) and extends its {MAX_PLAN_STEPS}-step plan by a `replan` verdict with "
        f"{MAX_PLAN_STEPS} new steps at each plan's last step (max_replans raised); the baseline "
        "adds a human 'next step' message",
        flush=True,
    )
    print(
        "segments end at each point by "
        + (
            "a drain request (enduro pauses and continues its pending tasks)"
            if args.stop == "drain"
            else "raising max_iterations (enduro finishes, then resumes through plan)"
        )
        + "; the baseline stops at a limit in its state",
        flush=True,
    )
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    enduro = EnduroSide(url, scratch / "enduro", args.window, args.keep, args.stop)
    baseline = BaselineSide(url, scratch / "baseline", args.window)
    sides: list[Side] = [enduro, baseline]
    results: dict[str, list[Sample]] = {s.name: [] for s in sides}
    try:
        for side in sides:
            await side.open(iterations)
        async with await psycopg.AsyncConnection.connect(
            url, autocommit=True, row_factory=dict_row
        ) as conn:
            for point in points:
                for side in sides:
                    ms = await side.advance_to(point)
                    total, rows, _ = await stored(conn, schema, side.thread_id)
                    last = await last_checkpoint_bytes(conn, side.thread_id)
                    prompt = side.model.act_prompt_chars[-1]
                    results[side.name].append(Sample(point, total, rows, last, ms, prompt))
                print(
                    f"  … {point} iterations: enduro {_fmt_bytes(results['enduro'][-1].bytes)}"
                    f" {results['enduro'][-1].ms_per_step:.1f} ms/step "
                    f"({enduro.seconds:.0f}s in all) · baseline "
                    f"{_fmt_bytes(results['baseline'][-1].bytes)}"
                    f" {results['baseline'][-1].ms_per_step:.1f} ms/step "
                    f"({baseline.seconds:.0f}s in all)",
                    flush=True,
                )
            _, _, per_table = await stored(conn, schema, enduro.thread_id)
            _, _, base_tables = await stored(conn, schema, baseline.thread_id)
            breakdown = {s.name: await checkpoint_breakdown(conn, s.thread_id) for s in sides}
    finally:
        for side in sides:
            await side.close()
        async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        shutil.rmtree(scratch, ignore_errors=True)

    e, b = results["enduro"], results["baseline"]
    print()
    print_table(
        ["iteration", "enduro bytes", "baseline bytes", "enduro ms/step", "baseline ms/step"],
        [
            [str(x.iteration), _fmt_bytes(x.bytes), _fmt_bytes(y.bytes),
             f"{x.ms_per_step:.2f}", f"{y.ms_per_step:.2f}"]
            for x, y in zip(e, b, strict=True)
        ],
    )  # fmt: skip
    print()
    print_table(
        ["iteration", "enduro rows", "baseline rows", "enduro last ckpt", "baseline last ckpt",
         "enduro act prompt", "baseline act prompt"],
        [
            [str(x.iteration), str(x.rows), str(y.rows), _fmt_bytes(x.last_checkpoint_bytes),
             _fmt_bytes(y.last_checkpoint_bytes), f"{x.prompt_chars} ch", f"{y.prompt_chars} ch"]
            for x, y in zip(e, b, strict=True)
        ],
    )  # fmt: skip
    print()
    at = {s.iteration: s for s in e}, {s.iteration: s for s in b}
    ref = 50 if 50 in at[0] else points[0]
    for name, samples in zip(("enduro", "baseline"), at, strict=True):
        first, final = samples[ref], samples[iterations]
        print(
            f"{name:>8}: bytes {iterations}/{ref} = {_ratio(final.bytes, first.bytes)} · "
            f"ms/step {iterations}/{ref} = {_ratio(final.ms_per_step, first.ms_per_step)} · "
            f"last checkpoint {iterations}/{ref} = "
            f"{_ratio(final.last_checkpoint_bytes, first.last_checkpoint_bytes)} · "
            f"wall {(enduro if name == 'enduro' else baseline).seconds:.0f}s"
        )
    print()
    print("stored per table at the end (bytes, rows):")
    for name, tables in (("enduro", per_table), ("baseline", base_tables)):
        print(
            f"  {name}: " + ", ".join(f"{t} {_fmt_bytes(v)} / {n}" for t, (v, n) in tables.items())
        )
    print("newest checkpoint by channel (raw / stored, largest first):")
    for name, parts in breakdown.items():
        shown = [f"{w} {_fmt_bytes(r)} / {_fmt_bytes(st)}" for w, r, st in parts[:5] if r >= 64]
        print(f"  {name}: " + ", ".join(shown))
    print(f"model calls: enduro {enduro.model.calls} · baseline {baseline.model.calls}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=2000, help="act calls per side")
    parser.add_argument("--quick", action="store_true", help="200 iterations")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ENDURO_BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL server; the bench works in a schema of its own and drops it",
    )
    parser.add_argument(
        "--keep", type=int, default=DEFAULT_KEEP_CHECKPOINTS, help="enduro's retention window"
    )
    parser.add_argument(
        "--stop",
        choices=("drain", "limit"),
        default="drain",
        help="how enduro's segments end at each point: a drain request (pause, then continue "
        "the pending tasks) or a raised max_iterations (finish, then resume through plan)",
    )
    parser.add_argument("--window", type=int, default=50, help="iterations per ms/step mean")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations = 200
    if args.iterations < 50:
        parser.error("--iterations must be at least 50 (ratios are taken against iteration 50)")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
