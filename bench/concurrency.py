"""Concurrency bench: threads advanced per second by `enduro worker`, against the ideal.

    .venv/bin/python bench/concurrency.py        # N = 1, 10, 50, 100 in one; 100 on 2 and 4
    .venv/bin/python bench/concurrency.py --latency 1 --steps 3 --threads 1 10 --workers 2
    .venv/bin/python bench/concurrency.py --database-url postgresql://…

Every case runs the same scripted workload (tests/fakellm.py answers each model call after
`--latency` seconds) on a fresh PostgreSQL schema: real `enduro worker` processes are started
and registered first, then N threads are queued at once (in-process, as `run --detach` does)
and the clock runs until the last one completes. A thread's model calls are sequential, so
with no overhead at all every thread would finish in calls x latency; the ratio printed is that
ideal over the measured time (1.0 = no overhead, 0.5 = half the ideal throughput). The first
row (one thread) is the baseline the others compare with, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from enduro.context import EnduroContext
from enduro.storage.backend import open_backend
from enduro.workers.submit import submit_new
from fakellm import ScriptedLLM

ENDURO = str(Path(sys.executable).parent / "enduro")


def schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


def drop(base: str, schema: str) -> None:
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


async def submit(url: str, n: int, workspace: str) -> list[str]:
    tids = [f"b-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    context = EnduroContext(workspace=workspace)
    async with open_backend(url) as backend:
        for i, tid in enumerate(tids):
            await submit_new(backend, f"Bench goal {i}", context, thread_id=tid)
    return tids


def finished(url: str, tids: list[str]) -> int:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM enduro_threads WHERE thread_id = ANY(%s)"
            " AND status IN ('completed', 'failed', 'budget_exhausted', 'cancelled')",
            (tids,),
        ).fetchone()
    return int(rows[0]) if rows else 0


def registered(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM enduro_workers").fetchone()
    return int(row[0]) if row else 0


def run_case(base: str, llm: ScriptedLLM, n: int, workers: int, timeout: float) -> float:
    """Seconds from queueing n threads to the last one finishing, on `workers` processes."""
    schema, url = schema_url(base)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ENDURO_"))}
    workspace = tempfile.mkdtemp(prefix="enduro-bench-")
    env.update(OPENAI_BASE_URL=llm.base_url, ENDURO_WORKSPACE=workspace)
    subprocess.run([ENDURO, "db", "migrate", "--db", url], env=env, check=True, capture_output=True)
    per = max(1, -(-n // workers))
    procs = [
        subprocess.Popen(
            [ENDURO, "worker", "--db", url, "--concurrency", str(per)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + 120
        while registered(url) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.2)
        llm.reset()
        start = time.perf_counter()
        tids = asyncio.run(submit(url, n, workspace))
        while finished(url, tids) < n:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{n} threads not done after {timeout} s")
            time.sleep(0.1)
        return time.perf_counter() - start
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        drop(base, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("ENDURO_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/test",
    )
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per model call")
    parser.add_argument("--steps", type=int, default=3, help="plan steps per thread")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--workers", type=int, nargs="*", default=[2, 4])
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    plan = [f"Bench step {i}" for i in range(1, args.steps + 1)]
    cases = [(n, 1) for n in args.threads] + [(max(args.threads), w) for w in args.workers]
    print(f"latency {args.latency} s per model call, {args.steps} steps per thread")
    print(f"{'threads':>8} {'workers':>8} {'calls':>6} {'seconds':>8} {'ideal':>7} {'ratio':>6}")
    with ScriptedLLM(latency=args.latency, steps=plan) as llm:
        for n, workers in cases:
            seconds = run_case(args.database_url, llm, n, workers, args.timeout)
            calls = llm.count() / n
            ideal = calls * args.latency
            print(
                f"{n:>8} {workers:>8} {calls:>6.1f} {seconds:>8.1f} {ideal:>7.1f}"
                f" {ideal / seconds:>6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
