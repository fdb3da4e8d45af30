"""Budget bench: how far past `max_usd` the provider's bill goes, over N random runs, for
enduro side by side with a plain check-after-call loop (the LiteLLM pattern: check the
budget before a call, add the cost after) on the same workload.

    .venv/bin/python bench/budget.py                # 50 runs per budget band
    .venv/bin/python bench/budget.py --runs 200 --seed 7

Every run draws a price (USD per million tokens), a max_output_tokens, a dollar limit and a
plan, in one of two bands: "tight" (a limit worth a handful of calls, 2-5 steps) and
"roomy" (a limit worth dozens of calls, 8-12 steps with tool use). The test suite's
scripted OpenAI-compatible server answers, with usage that is random but physically
possible (prompt tokens between a sixth and a third of the request's bytes, completion
tokens up to the max_tokens sent). Four contenders spend against the same limit on the
same server:

1. enduro: the real agent graph (plan / act / tools / reflect / finish) on SQLite. It stops
   when the limit is near, or when its plan is done (then it bills less than the limit).
2. check-after-call loop: replays the requests enduro's run sent (cycling through them, as
   an agent that keeps working would) until its own counter reaches the limit.
3. enduro seam, 4 parallel callers: four tasks calling the model through enduro's budget seam
   on one thread (one ledger), until the seam refuses.
4. check-after-call, 4 parallel callers: the same four tasks sharing one counter.

Overshoot is measured on the provider's side: the server's own tally of billed tokens,
priced the same way, minus the limit, as a share of the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from budgetkit import MODEL, billed_nusd, context, start
from enduro.budgets.ledger import Ledger
from enduro.budgets.metered import BudgetMiddleware
from enduro.budgets.pricing import TokenCounts, override_price, to_nano
from enduro.budgets.service import BudgetService
from enduro.errors import BudgetStop
from enduro.model_call import CallScope
from enduro.nodes.llm import invoke_model
from enduro.runner import advance_thread
from enduro.storage import open_backend
from fakellm import ScriptedLLM

WORDS = [
    "agent",
    "budget",
    "ledger",
    "reserve",
    "settle",
    "tokens",
    "provider",
    "limit",
    "durable",
    "resume",
]
PARALLEL = 4
MAX_LOOP_CALLS = 2000  # a loop on a free model would never stop


@dataclass
class Workload:
    seed: int
    price: dict[str, float]
    max_usd: float
    max_output_tokens: int
    steps: int
    tool_use: bool


@dataclass
class Result:
    name: str
    overshoot: list[float]
    spend_share: list[float]

    def row(self) -> str:
        over = f"{sum(1 for o in self.overshoot if o > 0)}/{len(self.overshoot)}"
        return (
            f"{self.name:<34} {over:>10} {100 * max(self.overshoot):>14.2f}%"
            f" {100 * statistics.fmean(self.overshoot):>14.2f}%"
            f" {100 * statistics.fmean(self.spend_share):>15.1f}%"
        )


HEADER = (
    f"{'':<34} {'over limit':>10} {'max overshoot':>15} {'mean overshoot':>15}"
    f" {'mean bill/limit':>16}"
)


@dataclass(frozen=True)
class Band:
    name: str
    usd: tuple[float, float]
    steps: tuple[int, int]
    tool_use: float


BANDS = (
    # A limit worth a handful of calls: where one call's overshoot is a large share.
    Band("tight: $0.002-$0.05, 2-5 steps", (0.002, 0.05), (2, 5), 0.5),
    # A limit worth dozens of calls, on long plans with tool use (up to 38 calls a run).
    Band("roomy: $0.05-$0.5, 8-12 steps", (0.05, 0.5), (8, 12), 1.0),
)


def workload(rng: random.Random, seed: int, band: Band) -> Workload:
    low, high = (math.log10(x) for x in band.usd)
    return Workload(
        seed=seed,
        price={"input": round(rng.uniform(0.5, 5), 3), "output": round(rng.uniform(2, 20), 3)},
        max_usd=round(10 ** rng.uniform(low, high), 5),
        max_output_tokens=rng.choice([128, 256, 512]),
        steps=rng.randint(*band.steps),
        tool_use=rng.random() < band.tool_use,
    )


def usage_fn(seed: int) -> Any:
    rng = random.Random(seed)

    def usage(kind: str, body: dict[str, Any]) -> tuple[int, int]:
        size = len(str(body.get("messages"))) + len(str(body.get("tools") or ""))
        most_out = int(body.get("max_completion_tokens") or body.get("max_tokens") or 1)
        return rng.randint(size // 6, size // 3), rng.randint(1, most_out)

    return usage


def share(billed: int, w: Workload) -> tuple[float, float]:
    limit = w.max_usd * 1e9
    return max(0.0, billed - limit) / limit, billed / limit


def prepare(llm: ScriptedLLM, w: Workload) -> None:
    llm.reset()
    llm.steps = [f"{random.Random(w.seed + i).choice(WORDS)} step {i}" for i in range(w.steps)]
    llm.tool_use = w.tool_use
    llm.usage_fn = usage_fn(w.seed)


async def run_enduro(llm: ScriptedLLM, db: str, w: Workload) -> list[dict[str, Any]]:
    prepare(llm, w)
    tid = await start(db, price=w.price, max_usd=w.max_usd, max_output_tokens=w.max_output_tokens)
    await advance_thread(tid, database_url=db)
    return [r.body for r in llm.requests]


async def post(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> tuple[int, int]:
    answer = (await client.post(url, json={**body, "stream": False})).json()
    usage = answer.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


async def run_loop(
    llm: ScriptedLLM, w: Workload, bodies: list[dict[str, Any]], workers: int
) -> None:
    """check-after-call: look at the counter before a call, add the reported cost after."""
    prepare(llm, w)
    price = override_price(w.price)
    spent = 0
    limit = w.max_usd * 1e9
    calls = 0
    url = f"{llm.base_url}/chat/completions"

    async def worker(offset: int) -> None:
        nonlocal spent, calls
        i = offset
        async with httpx.AsyncClient(timeout=30) as client:
            while spent < limit and calls < MAX_LOOP_CALLS:
                calls += 1
                prompt, completion = await post(client, url, bodies[i % len(bodies)])
                spent += to_nano(price.cost(TokenCounts(input=prompt, output=completion)))
                i += workers

    await asyncio.gather(*(worker(k) for k in range(workers)))


def synthetic(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(50, 600))) for _ in range(n)]


async def run_enduro_parallel(llm: ScriptedLLM, db: str, w: Workload, texts: list[str]) -> None:
    """Four callers on one thread through enduro's seam: each call reserves first."""
    prepare(llm, w)
    model = ChatOpenAI(
        model=MODEL,
        base_url=llm.base_url,
        api_key="bench",  # type: ignore[arg-type]
        max_tokens=w.max_output_tokens,  # type: ignore[call-arg]
        max_retries=0,
    )
    ctx = context(w.price, max_usd=w.max_usd, max_output_tokens=w.max_output_tokens)
    async with open_backend(db) as backend:
        budget = BudgetMiddleware(BudgetService(Ledger(backend.db)))
        scope = CallScope([budget], ctx, f"b-{uuid.uuid4().hex}", "act")

        async def worker(offset: int) -> None:
            for i in range(offset, MAX_LOOP_CALLS, PARALLEL):
                try:
                    await invoke_model(model, [HumanMessage(texts[i % len(texts)])], scope=scope)
                except BudgetStop:
                    return

        await asyncio.gather(*(worker(k) for k in range(PARALLEL)))


async def run_loop_parallel(llm: ScriptedLLM, w: Workload, texts: list[str]) -> None:
    bodies = [
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": t}],
            "max_completion_tokens": w.max_output_tokens,
        }
        for t in texts
    ]
    await run_loop(llm, w, bodies, PARALLEL)


async def run_band(
    llm: ScriptedLLM, db: str, band: Band, runs: int, seed: int
) -> dict[str, Result]:
    rng = random.Random(f"{seed}:{band.name}")
    results = {
        key: Result(name, [], [])
        for key, name in [
            ("enduro", "enduro agent (sequential)"),
            ("loop", "check-after-call loop"),
            ("enduro4", f"enduro seam, {PARALLEL} parallel callers"),
            ("loop4", f"check-after-call, {PARALLEL} parallel"),
        ]
    }
    pool: list[dict[str, Any]] = []
    for i in range(runs):
        w = workload(rng, seed * 1000 + i, band)

        def record(key: str, w: Workload = w) -> None:
            over, used = share(billed_nusd(llm, w.price), w)
            results[key].overshoot.append(over)
            results[key].spend_share.append(used)

        bodies = await run_enduro(llm, db, w)
        record("enduro")
        pool = bodies or pool
        await run_loop(llm, w, bodies or pool, 1)
        record("loop")
        texts = synthetic(random.Random(w.seed), 64)
        await run_enduro_parallel(llm, db, w, texts)
        record("enduro4")
        await run_loop_parallel(llm, w, texts)
        record("loop4")
    return results


def show(band: Band, results: dict[str, Result]) -> None:
    print(f"\n{band.name}")
    print(HEADER)
    for result in results.values():
        print(result.row())
    mean = statistics.fmean
    for solo, base in (("enduro", "loop"), ("enduro4", "loop4")):
        e, b = results[solo], results[base]
        print(
            f"  ratio {b.name} / {e.name}:"
            f" max overshoot {ratio(max(b.overshoot), max(e.overshoot))},"
            f" mean overshoot {ratio(mean(b.overshoot), mean(e.overshoot))},"
            f" mean bill/limit {ratio(mean(b.spend_share), mean(e.spend_share))}"
        )


async def main(runs: int, seed: int) -> None:
    started = time.monotonic()
    os.environ.pop("OPENAI_API_KEY", None)
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLM() as llm:
        os.environ["OPENAI_BASE_URL"] = llm.base_url
        os.environ["ENDURO_WORKSPACE"] = str(Path(tmp) / "ws")
        db = str(Path(tmp) / "bench.sqlite")
        bands = [(band, await run_band(llm, db, band, runs, seed)) for band in BANDS]
    print(
        f"enduro budget bench: {runs} random runs per band (seed {seed}), "
        f"{time.monotonic() - started:.0f}s. Prices $0.5-5 in / $2-20 out per Mtok, "
        "max_output_tokens 128-512. Overshoot = the provider's bill past max_usd, as a share "
        "of max_usd; bill/limit = the provider's bill as a share of max_usd."
    )
    for band, results in bands:
        show(band, results)


def ratio(a: float, b: float) -> str:
    if b == 0:
        return "inf (enduro: 0)" if a > 0 else "- (both 0)"
    return f"{a / b:.2f}x" if math.isfinite(a / b) else "inf"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs per budget band")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.seed))
