"""Dashboard bench: time to answer one page of threads with 150 threads vs 10,000, in one run.

    .venv/bin/python bench/dashboard.py                                   # SQLite
    .venv/bin/python bench/dashboard.py --database-url postgresql://…     # PostgreSQL

Two fresh databases are filled with `--small` and `--large` threads, each with a thread row,
a checkpoint holding a plan of 6 steps (half done) and 4 ledger rows, as a run leaves them.
Then the same page requests are timed on each (`enduro.dashboard.source.page`, what GET
/api/threads runs, without HTTP): the first page, a page deep in the list (reached by its
cursor), and a page filtered by status. Each is the median of `--repeat` requests of 50
threads. The ratio is large over small: 1.0 means the page costs the same whatever the
number of threads (keyset pagination on the `(created_at, thread_id)` index). The small
database has 150 threads rather than 10 so that every page compared is a full one (50
threads; a third of them completed): a page of 10 costs less only because it shows less.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.base import empty_checkpoint

from enduro.context import EnduroContext
from enduro.dashboard import source
from enduro.storage import Backend, is_postgres, open_backend

PAGE = 50


async def fill(backend: Backend, count: int) -> None:
    """`count` threads as runs leave them: row, one checkpoint, a few ledger rows."""
    context = EnduroContext(max_usd=2.0).to_dict()
    start = time.time() - count
    async with backend.db.transaction() as tx:
        for n in range(count):
            tid = f"b-{uuid.uuid4().hex[:12]}"
            status = ("paused", "completed", "cancelled")[n % 3]
            await tx.execute(
                "INSERT INTO enduro_threads (thread_id, goal, status, context, created_at,"
                " updated_at, segments) VALUES (%s, %s, %s, %s, %s, %s, 1)",
                (tid, f"goal {n}", status, _json(context), start + n, start + n),
            )
            for k, node in enumerate(("plan", "act", "reflect", "act")):
                await tx.execute(
                    "INSERT INTO enduro_spend (call_id, thread_id, node, model, state,"
                    " reserved_nusd, reserved_tokens, settled_nusd, settled_tokens,"
                    " input_tokens, output_tokens, created_at)"
                    " VALUES (%s, %s, %s, 'm', 'settled', 2000000, 900, 1000000, 500, 400,"
                    " 100, %s)",
                    (uuid.uuid4().hex, tid, node, start + n + k / 10),
                )
    for n, row in enumerate(await backend.db.fetchall("SELECT thread_id FROM enduro_threads")):
        await _checkpoint(backend, row["thread_id"], n)


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


async def _checkpoint(backend: Backend, tid: str, n: int) -> None:
    checkpoint = empty_checkpoint()
    plan = [
        {
            "id": f"s{i}",
            "title": f"Step {i}",
            "detail": "d",
            "status": "done" if i < 3 else "pending",
        }
        for i in range(6)
    ]
    checkpoint["channel_values"] = {"goal": f"goal {n}", "plan": plan, "current": "s3"}
    checkpoint["channel_versions"] = {"goal": 1, "plan": 1, "current": 1}
    config = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    await backend.saver.aput(config, checkpoint, {"source": "loop", "step": 1}, {})  # type: ignore[arg-type]


async def requests(backend: Backend, count: int) -> dict[str, dict[str, Any]]:
    """The page requests to time on a database of `count` threads."""
    deep_rows = await backend.db.fetchall(
        "SELECT thread_id, created_at FROM enduro_threads ORDER BY created_at DESC,"
        " thread_id DESC LIMIT 1 OFFSET %s",
        (max(0, count // 2),),
    )
    deep = source.encode_cursor_values(deep_rows[0]["created_at"], deep_rows[0]["thread_id"])
    return {
        "first page": {"status": None, "cursor": None},
        "deep page": {"status": None, "cursor": deep},
        "status=completed": {"status": "completed", "cursor": None},
    }


async def measure(urls: dict[str, str], counts: dict[str, int], repeat: int) -> Any:
    """Median ms per request and database; the databases take turns, request by request,
    so that a change in the machine's load falls on both alike."""
    async with open_backend(urls["small"]) as small, open_backend(urls["large"]) as large:
        backends = {"small": small, "large": large}
        plans = {}
        for name, backend in backends.items():
            t0 = time.perf_counter()
            await fill(backend, counts[name])
            print(f"  filled {counts[name]} threads in {time.perf_counter() - t0:.1f} s")
            plans[name] = await requests(backend, counts[name])
        samples: dict[str, dict[str, list[float]]] = {n: {} for n in backends}
        for _ in range(repeat):
            for key in plans["small"]:
                for name, backend in backends.items():
                    t0 = time.perf_counter()
                    items, _ = await source.page(backend, limit=PAGE, **plans[name][key])
                    samples[name].setdefault(key, []).append(time.perf_counter() - t0)
                    assert len(items) == PAGE, (name, key, len(items))
        return {
            name: {key: statistics.median(v) * 1000 for key, v in per.items()}
            for name, per in samples.items()
        }


def fresh(url: str | None, tmp: Path, name: str, schemas: list[str]) -> str:
    if url is None:
        return str(tmp / f"{name}.sqlite")
    assert is_postgres(url)
    schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    schemas.append(schema)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def drop(url: str | None, schemas: list[str]) -> None:
    if url is None:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite files)")
    parser.add_argument("--small", type=int, default=150)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    engine = "postgres" if args.database_url else "sqlite"
    schemas: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        counts = {"small": args.small, "large": args.large}
        try:
            urls = {n: fresh(args.database_url, Path(tmp), n, schemas) for n in counts}
            results = asyncio.run(measure(urls, counts, args.repeat))
        finally:
            drop(args.database_url, schemas)
    print(f"\n{engine}: one page of {PAGE} threads (median of {args.repeat}), ms")
    print(f"{'request':>18} | {args.small:>8} threads | {args.large:>8} threads | ratio")
    for key in results["small"]:
        small, large = results["small"][key], results["large"][key]
        print(f"{key:>18} | {small:>16.1f} | {large:>16.1f} | {large / small:5.2f}")


if __name__ == "__main__":
    main()
