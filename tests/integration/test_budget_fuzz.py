"""Fuzz: randomized runs against the scripted server with random usage, random limits, random
faults and random kills, on both engines. After every run, whatever happened:

- the ledger's spend <= max_usd, and the tokens and model calls it charged <= their limits;
- the server's own tally of billed tokens, priced the same way, <= max_usd and <= the ledger;
- no settled call cost more than its reservation (the token bound held);
- every request the server saw has a ledger row (written before the call).

Kills are in-process cancellations (the same code path as a second signal: at random moments
on PostgreSQL, inside model calls on SQLite) plus real SIGKILLs of an `enduro` subprocess.
The seed is printed on failure; ENDURO_FUZZ_SEED replays a run, ENDURO_FUZZ_RUNS changes how
many.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from budgetkit import billed_nusd, ledger_rows, start, totals, usd_to_nano
from clikit import ENDURO
from clikit import cli_env as _env
from enduro import threads
from enduro.runner import advance_thread
from enduro.storage import open_backend
from fakellm import Fault, ScriptedLLM

RUNS = int(os.environ.get("ENDURO_FUZZ_RUNS", "100"))
SEED = int(os.environ.get("ENDURO_FUZZ_SEED", str(random.randrange(1 << 30))))
TOPICS = ["Survey", "Collect", "Compare", "Draft", "Check", "Polish"]


def _request_bytes(body: dict[str, Any]) -> int:
    """The most prompt tokens a byte-level tokenizer can make of this request."""
    sent = {"messages": body.get("messages"), "tools": body.get("tools")}
    return len(json.dumps(sent, ensure_ascii=False).encode())


def _usage_fn(rng: random.Random, mode: str) -> Any:
    def usage(kind: str, body: dict[str, Any]) -> tuple[int, int]:
        most_in = _request_bytes(body)
        most_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)
        if mode == "max":  # a provider billing every token it could
            return most_in, most_out
        if mode == "typical":  # ~4 bytes per token, short answers
            return most_in // 4, rng.randint(1, max(1, most_out // 4))
        return rng.randint(0, most_in), rng.randint(0, most_out)

    return usage


def _limits(rng: random.Random) -> dict[str, Any]:
    price = {"input": round(rng.uniform(0.1, 5), 3), "output": round(rng.uniform(0.4, 20), 3)}
    knobs: dict[str, Any] = {
        "price": price,
        # Log-uniform from "not even the plan fits" to "plenty".
        "max_usd": round(10 ** rng.uniform(-3, 0), 6),
        "max_output_tokens": rng.choice([16, 64, 128, 256, 512]),
    }
    if rng.random() < 0.3:
        knobs["max_llm_calls"] = rng.randint(1, 12)
    if rng.random() < 0.3:
        knobs["max_tokens"] = rng.randint(500, 8000)
    if rng.random() < 0.2:
        knobs["max_tool_calls"] = rng.randint(0, 3) or None
    if rng.random() < 0.3:
        knobs["final_reserve_usd"] = round(knobs["max_usd"] * rng.uniform(0, 0.3), 6)
    return knobs


def _faults(rng: random.Random, llm: ScriptedLLM) -> None:
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        kind = rng.choice(["plan", "act", "review", "final", None])
        fault = rng.choice(
            [
                Fault(kind=kind, status=429, retry_after=0.01),
                Fault(kind=kind, status=500),
                Fault(kind=kind, cut_stream=True),
                Fault(kind=kind, delay=0.05),
                Fault(kind=kind, malformed=True),
            ]
        )
        llm.push(fault)


async def _in_a_call(llm: ScriptedLLM, task: asyncio.Task[Any], rng: random.Random) -> None:
    """Wait until the server is answering a request of this run (or the run ended)."""
    seen = len(llm.requests)
    skip = rng.randint(0, 4)  # not always the first call after the kill point
    for _ in range(400):
        with llm._lock:
            fresh = llm.requests[seen:]
        if task.done() or any(r.status is None for r in fresh[skip:]):
            return
        await asyncio.sleep(0.005)


async def _run_with_kills(
    rng: random.Random, db_url: str, tid: str, llm: ScriptedLLM, anywhere: bool
) -> str:
    for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
        task = asyncio.create_task(advance_thread(tid, database_url=db_url))
        if anywhere:
            await asyncio.sleep(rng.uniform(0, 0.25))
        else:
            await _in_a_call(llm, task, rng)
            await asyncio.sleep(rng.uniform(0, 0.02))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The process "died": its lease goes with it, as a dead owner's does.
        async with open_backend(db_url) as backend:
            await threads.release(backend.db, tid, "paused", "crashed")
    outcome = await advance_thread(tid, database_url=db_url)
    return f"{outcome.status}:{outcome.stop_reason}"[:40]


async def _check(db_url: str, tid: str, llm: ScriptedLLM, knobs: dict[str, Any]) -> None:
    spent = await totals(db_url, tid)
    cap = usd_to_nano(knobs["max_usd"])
    billed = billed_nusd(llm, knobs["price"])
    assert spent.charged_nusd <= cap, f"ledger {spent.charged_nusd} > {cap}"
    assert billed <= cap, f"provider bill {billed} > {cap}"
    assert billed <= spent.charged_nusd, "the ledger under-counts the provider"
    if knobs.get("max_tokens") is not None:
        assert spent.charged_tokens <= knobs["max_tokens"]
        assert sum(llm.billed_tokens()) <= knobs["max_tokens"]
    if knobs.get("max_llm_calls") is not None:
        assert spent.llm_calls <= knobs["max_llm_calls"]
        assert llm.count() <= knobs["max_llm_calls"]
    rows = await ledger_rows(db_url, tid)
    for row in rows:
        if row["state"] == "settled":
            assert row["settled_nusd"] <= row["reserved_nusd"], f"bound broken: {row}"
            assert row["settled_tokens"] <= row["reserved_tokens"], f"bound broken: {row}"
    assert len(rows) >= len(llm.requests), "a request without its ledger row"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    import enduro.budgets.metered as metered
    import enduro.graph as graph_module

    monkeypatch.setattr(metered, "BACKOFF", metered.Backoff(initial=0.01, max_delay=0.05))
    fast = graph_module.MODEL_RETRY._replace(initial_interval=0.01, jitter=False)
    monkeypatch.setattr(graph_module, "MODEL_RETRY", fast)


@pytest.mark.usefixtures("fast_retries")
async def test_random_runs_never_pass_their_limits(db_url: str, llm_env: ScriptedLLM) -> None:
    rng = random.Random(SEED)
    outcomes: dict[str, int] = {}
    for i in range(RUNS):
        llm_env.reset()
        llm_env.steps = [f"{rng.choice(TOPICS)} part {n}" for n in range(rng.randint(1, 4))]
        llm_env.tool_use = rng.random() < 0.5
        llm_env.usage_fn = _usage_fn(rng, rng.choice(["max", "typical", "random", "random"]))
        llm_env.latency = rng.choice([0.0, 0.0, 0.02])
        _faults(rng, llm_env)
        knobs = _limits(rng)
        tid = await start(db_url, **knobs)
        try:
            # On SQLite, in-process kills land inside model calls: a checkpoint write
            # cancelled half-way leaves LangGraph's AsyncSqliteSaver connection inside an
            # open transaction that only a real process exit releases (the SIGKILL tests
            # below kill anywhere, on both engines).
            anywhere = not db_url.endswith(".sqlite")
            status = await _run_with_kills(rng, db_url, tid, llm_env, anywhere)
            await _check(db_url, tid, llm_env, knobs)
        except BaseException as exc:
            raise AssertionError(f"fuzz run {i} (ENDURO_FUZZ_SEED={SEED}): {knobs}") from exc
        outcomes[status] = outcomes.get(status, 0) + 1
    # The runs must exercise both sides of the limit, or the invariant proves little.
    exhausted = sum(n for k, n in outcomes.items() if k.startswith("budget_exhausted:max_usd"))
    assert exhausted >= RUNS // 10, outcomes
    assert outcomes.get("completed:None", 0) >= RUNS // 10, outcomes


@pytest.mark.parametrize("kill_after", [2, 5])
def test_sigkill_mid_run_never_passes_max_usd(db_url: str, tmp_path: Path, kill_after: int) -> None:
    rng = random.Random(SEED + kill_after)
    steps = ["Collect sources", "Read sources", "Extract facts", "Draft report"]
    usage = _usage_fn(rng, "random")
    with ScriptedLLM(steps=steps, tool_use=True, latency=0.1, usage_fn=usage) as llm:
        env = _env(llm, tmp_path)
        tid = str(uuid.uuid4())
        price = ["--model", "fake-model", "--price-input", "3", "--price-output", "12"]
        max_usd = round(rng.uniform(0.05, 0.15), 4)
        argv = [ENDURO, "run", "goal", "--thread-id", tid, "--db", db_url, "--json", *price]
        argv += ["--max-usd", str(max_usd), "--max-output-tokens", "512"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert llm.wait_for(kill_after, timeout=60), proc.communicate(timeout=5)[1]
            time.sleep(rng.uniform(0, 0.1))  # anywhere in a call: before, during, after
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        billed_at_kill = billed_nusd(llm, {"input": 3, "output": 12})
        status = _cli_json(["status", tid, "--db", db_url, "--json"], env)
        assert status["status"] == "paused" and status["stop_reason"] == "crashed"
        assert usd_to_nano(status["usage"]["usd"]) >= billed_at_kill
        assert usd_to_nano(status["usage"]["usd"]) <= usd_to_nano(max_usd)
        final = _cli_json(["resume", tid, "--db", db_url, "--json"], env, ok=(0, 3))
        assert final["status"] in ("completed", "budget_exhausted")
        assert final["limits"]["max_usd"] == max_usd, "the limit carried over"
        spent = usd_to_nano(final["usage"]["usd"])
        assert billed_nusd(llm, {"input": 3, "output": 12}) <= spent <= usd_to_nano(max_usd)
        assert spent >= usd_to_nano(status["usage"]["usd"]), "spend never goes back"
        rows = asyncio.run(ledger_rows(db_url, tid))
        assert len(rows) >= len(llm.requests)


def _cli_json(args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> Any:
    done = subprocess.run(
        [ENDURO, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode in ok, done.stderr
    return json.loads(done.stdout)
