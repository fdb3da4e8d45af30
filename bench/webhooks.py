"""Webhook bench: step time with a receiver that hangs vs no receiver, in the same run.

    .venv/bin/python bench/webhooks.py                  # 3 rounds of 8 steps each way, SQLite
    .venv/bin/python bench/webhooks.py --rounds 5 --steps 12 --database-url postgresql://…

One process runs the same scripted workload (tests/fakellm.py: an OpenAI-compatible server
on 127.0.0.1 answering every model call after `--latency` seconds) in turn without webhooks,
with a receiver that answers 200 at once, and with one that accepts the connection and never
answers, so every delivery attempt waits out its full timeout. The fast receiver separates
what writing the outbox costs (a row per event, on the agent's path by design: an event is
durable before anything tries to send it) from what the hanging receiver costs. Heartbeats
are frequent (`--heartbeat`) so the outbox gets many events to push at the stuck receiver
(far more than a real run's default of 30 s would write). A step's time is the wall time
between the ends of consecutive steps (reflect's update), measured by the runner's update
callback; the first step is measured from the end of planning. The ratio is the mean step
time with the hanging receiver over the mean without: 1.0 means the receiver costs the
agent nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from enduro.context import EnduroContext
from enduro.nodes.llm import openai_model_factory
from enduro.runner import advance_with_backend, create_run
from enduro.settings import Settings
from enduro.storage import open_backend
from enduro.webhooks.config import WebhookConfig
from enduro.webhooks.session import WebhookSession
from fakellm import ScriptedLLM
from receiver import Receiver, hanging_receiver


async def one_run(
    db_url: str, base_url: str, config: WebhookConfig, workspace: str
) -> tuple[list[float], dict[str, int]]:
    marks: list[float] = []

    def on_update(chunk: dict[str, Any]) -> None:
        if "plan" in chunk or "reflect" in chunk:
            marks.append(time.perf_counter())

    model = openai_model_factory(Settings(base_url=base_url, api_key="bench"))
    async with open_backend(db_url) as backend:
        tid = await create_run(
            backend, "bench goal", EnduroContext(model="fake", workspace=workspace)
        )
        async with WebhookSession(backend.db, config) as session:
            outcome = await advance_with_backend(
                backend, tid, model=model, on_update=on_update, webhooks=session
            )
            stats = dict(session.sender.stats)
        assert outcome.status == "completed", outcome
        row = await backend.db.fetchone(
            "SELECT COUNT(*) AS n FROM enduro_webhook_events WHERE thread_id = %s", (tid,)
        )
        stats["events"] = int(row["n"]) if row else 0
    return [b - a for a, b in itertools.pairwise(marks)], stats


def summary(name: str, steps: list[float]) -> str:
    ms = sorted(s * 1000 for s in steps)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"{name:<18} {len(ms):>6} {statistics.mean(ms):>10.1f} {statistics.median(ms):>9.1f}"
        f" {p95:>9.1f} {max(ms):>9.1f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--heartbeat", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=10.0, help="per delivery attempt")
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    args = parser.parse_args()

    steps = [f"Step {i + 1}" for i in range(args.steps)]
    results: dict[str, list[float]] = {"none": [], "fast": [], "hang": []}
    totals: dict[str, int] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        ScriptedLLM(steps=steps, latency=args.latency) as llm,
        hanging_receiver() as stuck,
        Receiver() as fine,
    ):
        db_url = args.database_url or str(Path(tmp) / "bench.sqlite")
        hang = WebhookConfig(
            urls=(stuck.url,),
            timeout_seconds=args.timeout,
            heartbeat_seconds=args.heartbeat,
            flush_seconds=0,  # measure steps, not the exit
        )
        fast = WebhookConfig(urls=(fine.url,), heartbeat_seconds=args.heartbeat, flush_seconds=0)
        await one_run(db_url, llm.base_url, WebhookConfig(), tmp)  # warm-up
        for _ in range(args.rounds):
            for name, config in (("none", WebhookConfig()), ("fast", fast), ("hang", hang)):
                durations, stats = await one_run(db_url, llm.base_url, config, tmp)
                results[name] += durations
                if name == "hang":
                    for key, value in stats.items():
                        totals[key] = totals.get(key, 0) + value
        requests = len(stuck.hits)

    ratio = statistics.mean(results["hang"]) / statistics.mean(results["none"])
    print(
        f"enduro webhook bench: {args.rounds} rounds x {args.steps} steps per setting, "
        f"model latency {args.latency * 1000:.0f} ms, "
        f"{'PostgreSQL' if args.database_url else 'SQLite'}, same process"
    )
    print(
        f"hanging receiver: accepts, never answers; {args.timeout:g} s timeout per attempt, "
        f"heartbeat every {args.heartbeat:g} s of silence"
    )
    print(f"{'':<18} {'steps':>6} {'mean ms':>10} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    print(summary("no receiver", results["none"]))
    print(summary("fast receiver", results["fast"]))
    print(summary("hanging receiver", results["hang"]))
    print(f"ratio hanging/none (mean step time): {ratio:.3f}")
    fast_ratio = statistics.mean(results["hang"]) / statistics.mean(results["fast"])
    print(f"ratio hanging/fast (mean step time): {fast_ratio:.3f}")
    print(
        f"while hanging: {totals.get('events', 0)} events written to the outbox, "
        f"{requests} requests reached the receiver, {totals.get('delivered', 0)} delivered "
        "(the rest stay pending, in order, for the next resume or `enduro webhooks deliver`)"
    )


if __name__ == "__main__":
    asyncio.run(main())
