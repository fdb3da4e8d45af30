"""`enduro worker` as deployed: real worker processes on real PostgreSQL, the scripted model
server, kill -9, SIGTERM, SIGSTOP, cancel, watch, and webhooks delivered by workers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from clikit import ENDURO, cli_env, run_cli
from enduro.status import checkpoint_values
from enduro.storage.backend import open_backend
from fakellm import ScriptedLLM
from receiver import Receiver, reserve_port
from workerkit import Workers, wait_until, workers

pytestmark = pytest.mark.postgres

TERMINAL = {"completed", "failed", "cancelled", "budget_exhausted"}


@contextlib.contextmanager
def _cluster(
    db: str, tmp_path: Path, latency: float, steps: int = 3
) -> Iterator[tuple[ScriptedLLM, Workers]]:
    """The scripted model server (`steps` plan steps) and the test's worker processes
    (reaped at the end)."""
    plan = [f"Step number {i}" for i in range(1, steps + 1)]
    with (
        ScriptedLLM(latency=latency, steps=plan) as llm,
        workers(db, cli_env(llm, tmp_path), tmp_path) as pool,
    ):
        yield llm, pool


def _goal(i: int, tag: str) -> str:
    return f"Report {tag}-{i} on durable agents"


def _reviews(llm: ScriptedLLM, goal: str) -> Counter[str]:
    """(step id -> answered review calls) of one thread, told apart by its goal text."""
    with llm._lock:
        return Counter(
            r.step_id or "?"
            for r in llm.requests
            if r.ok and r.kind == "review" and goal in json.dumps(r.body)
        )


def _plans(llm: ScriptedLLM, goal: str) -> int:
    with llm._lock:
        return sum(
            1 for r in llm.requests if r.ok and r.kind == "plan" and goal in json.dumps(r.body)
        )


def _done_steps(db: str, thread_ids: list[str]) -> dict[str, list[str]]:
    """Steps each thread's latest checkpoint records as done."""

    async def read() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        async with open_backend(db, migrate_schema=False) as backend:
            for tid in thread_ids:
                values, _ = await checkpoint_values(backend, tid)
                out[tid] = [s["id"] for s in values.get("plan") or [] if s["status"] == "done"]
        return out

    return asyncio.run(read())


def _pending_events(db: str, thread_id: str) -> int:
    async def count() -> int:
        async with open_backend(db, migrate_schema=False) as backend:
            rows = await backend.db.fetchall(
                "SELECT seq FROM enduro_webhook_events WHERE thread_id = %s", (thread_id,)
            )
        return len(rows)

    return asyncio.run(count())


def _all_terminal(pool: Workers, tids: list[str]) -> bool:
    seen = pool.statuses()
    return all(seen.get(t) in TERMINAL for t in tids)


def test_worker_and_detach_need_postgres(llm: ScriptedLLM, tmp_path: Path) -> None:
    env = cli_env(llm, tmp_path)
    db = str(tmp_path / "e.sqlite")
    done = run_cli(["worker", "--db", db], env)
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr and "Traceback" not in done.stderr
    done = run_cli(["run", "goal", "--detach", "--db", db, "--json"], env)
    assert done.returncode == 2 and "needs PostgreSQL" in done.stderr


def test_detach_then_watch_and_workers(pg_url: str, tmp_path: Path) -> None:
    with _cluster(pg_url, tmp_path, 1.0) as (llm, pool):
        tid = str(uuid.uuid4())
        queued = pool.detach(_goal(0, "watch"), tid)
        assert (queued["thread_id"], queued["status"]) == (tid, "queued")
        watcher = subprocess.Popen(
            [ENDURO, "watch", tid, "--db", pg_url, "--json"],
            env=pool.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            worker = pool.start(concurrency=2)
            listed: list[dict[str, Any]] = []

            def held() -> bool:
                listed[:] = json.loads(pool.cli("workers", "--json").stdout)
                return any(tid in w["threads"] for w in listed)

            wait_until(held, 60, "the worker to list the thread it holds")
            assert listed[0]["pid"] == worker.pid and listed[0]["concurrency"] == 2
            out, err = watcher.communicate(timeout=90)
        finally:
            watcher.kill()
        assert watcher.returncode == 0, err
        assert json.loads(out)["status"] == "completed"
        assert "step s1 done" in err
        assert _plans(llm, _goal(0, "watch")) == 1


def test_kill9_worker_threads_finish_elsewhere(pg_url: str, tmp_path: Path) -> None:
    n = 20
    with _cluster(pg_url, tmp_path, 0.5, steps=5) as (llm, pool):
        victim = pool.start(concurrency=8)
        pool.start(concurrency=8)
        pool.start(concurrency=8)
        tids = [str(uuid.uuid4()) for _ in range(n)]
        prices = {"": {"input": 1.0, "output": 1.0}}
        pool.submit({t: _goal(i, "kill") for i, t in enumerate(tids)}, max_usd=0.5, prices=prices)

        wait_until(lambda: llm.count("review") >= n // 2, 60, "some steps to finish")
        wait_until(lambda: bool(pool.holding(victim.pid)), 30, "the victim to hold threads")
        victim.kill()
        killed_at = time.monotonic()
        recorded = _done_steps(pg_url, tids)
        reviews_then = {t: _reviews(llm, _goal(i, "kill")) for i, t in enumerate(tids)}
        wait_until(lambda: _all_terminal(pool, tids), 120, "every thread to finish")
        assert time.monotonic() - killed_at < 90
        final = pool.statuses()
        for i, tid in enumerate(tids):
            assert final[tid] == "completed", tid
            assert 0 < pool.spent_usd(tid) <= 0.5
            goal = _goal(i, "kill")
            assert _plans(llm, goal) == 1, tid
            now = _reviews(llm, goal)
            for step in recorded[tid]:
                assert now[step] == reviews_then[tid][step], f"{tid} re-ran recorded {step}"


def test_rolling_sigterm_restart_loses_and_repeats_nothing(pg_url: str, tmp_path: Path) -> None:
    n = 6
    with _cluster(pg_url, tmp_path, 0.3) as (llm, pool):
        first = [pool.start(concurrency=5), pool.start(concurrency=5)]
        tids = [str(uuid.uuid4()) for _ in range(n)]
        pool.submit({t: _goal(i, "roll") for i, t in enumerate(tids)})
        wait_until(lambda: llm.count("review") >= 2, 60, "work to start")
        for old in first:
            pool.start(concurrency=5)
            old.send_signal(signal.SIGTERM)
            assert old.wait(timeout=30) == 0, pool.log_of(old)
            assert "drain" in pool.log_of(old)
        wait_until(lambda: _all_terminal(pool, tids), 120, "every thread to finish")
        final = pool.statuses()
        for i, tid in enumerate(tids):
            assert final[tid] == "completed"
            goal = _goal(i, "roll")
            assert _plans(llm, goal) == 1
            # A drain ends at a step boundary: no step was ever reviewed twice.
            assert all(c == 1 for c in _reviews(llm, goal).values()), _reviews(llm, goal)


def test_slice_requeues_and_the_thread_still_finishes(pg_url: str, tmp_path: Path) -> None:
    with _cluster(pg_url, tmp_path, 0.05) as (llm, pool):
        tid = str(uuid.uuid4())
        pool.detach(_goal(0, "slice"), tid)
        worker = pool.start("--slice-steps", "3", concurrency=1)
        wait_until(lambda: _all_terminal(pool, [tid]), 60, "the thread to finish")
        status = pool.status(tid)
        assert status["status"] == "completed"
        assert status["segments"] >= 3, "each slice is a segment"
        assert all(c == 1 for c in _reviews(llm, _goal(0, "slice")).values())
        assert worker.poll() is None


def test_cancel_queued_and_running(pg_url: str, tmp_path: Path) -> None:
    with _cluster(pg_url, tmp_path, 1.0, steps=8) as (llm, pool):
        queued, running = str(uuid.uuid4()), str(uuid.uuid4())
        pool.detach(_goal(0, "cq"), queued)
        done = pool.cli("cancel", queued, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["status"] == "cancelled"
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT status::text FROM procrastinate_jobs WHERE lock = %s", (queued,)
            ).fetchone()
        assert row == ("cancelled",)

        pool.detach(_goal(1, "cr"), running)
        pool.start(concurrency=2)
        wait_until(lambda: llm.count("act") >= 1, 60, "the first step")
        done = pool.cli("cancel", running)
        assert done.returncode == 0, done.stderr
        watch = pool.cli("watch", running, "--json", timeout=60)
        assert watch.returncode == 5, watch.stderr
        final = json.loads(watch.stdout)
        assert (final["status"], final["stop_reason"]) == ("cancelled", "cancel")
        assert final["report"], "a cancelled run still writes its report"
        assert pool.statuses()[queued] == "cancelled", "the cancelled job never ran"
        assert _plans(llm, _goal(0, "cq")) == 0


def test_sigstop_past_the_lease_fences_the_stale_worker(pg_url: str, tmp_path: Path) -> None:
    with _cluster(pg_url, tmp_path, 1.0) as (llm, pool):
        tid = str(uuid.uuid4())
        pool.detach(_goal(0, "fence"), tid, "--keep-checkpoints", "1000")
        stale = pool.start(concurrency=1)
        wait_until(lambda: llm.count("act") >= 1, 30, "the first step")
        llm.wait_for(llm.count() + 1, timeout=10)  # a model call is in flight now
        stale.send_signal(signal.SIGSTOP)
        fresh = pool.start(concurrency=1)
        wait_until(lambda: _all_terminal(pool, [tid]), 90, "the other worker to finish it")
        stale.send_signal(signal.SIGCONT)
        assert stale.wait(timeout=30) == 1, pool.log_of(stale)
        assert "declared dead" in pool.log_of(stale) or "lost" in pool.log_of(stale)
        assert pool.status(tid)["status"] == "completed"
        with psycopg.connect(pg_url) as conn:
            forks = conn.execute(
                "SELECT parent_checkpoint_id FROM checkpoints WHERE thread_id = %s"
                " AND checkpoint_ns = '' GROUP BY parent_checkpoint_id HAVING count(*) > 1",
                (tid,),
            ).fetchall()
        assert forks == [], "the stale worker wrote a checkpoint after the takeover"
        assert fresh.poll() is None


def test_receiver_down_for_the_whole_run_gets_every_event_later(
    pg_url: str, tmp_path: Path
) -> None:
    port = reserve_port()
    with _cluster(pg_url, tmp_path, 0.05) as (_llm, pool):
        tid = str(uuid.uuid4())
        pool.detach(_goal(0, "hook"), tid, "--webhook-url", f"http://127.0.0.1:{port}/hooks")
        pool.start(concurrency=1)
        wait_until(lambda: _all_terminal(pool, [tid]), 60, "the run to finish")
        with psycopg.connect(pg_url) as conn:
            (written,) = conn.execute(
                "SELECT count(*) FROM enduro_webhook_events WHERE thread_id = %s", (tid,)
            ).fetchone() or (0,)
        assert written >= 5
        with Receiver(port=port) as receiver:
            assert receiver.wait_for(lambda hits: len(hits) >= written, timeout=60)
            seqs = [h.seq for h in receiver.accepted() if h.thread_id == tid]
        assert sorted(set(seqs)) == list(range(1, written + 1))
        assert receiver.types()[0] == "run.queued"
        assert "run.completed" in receiver.types()


def test_webhooks_deliver_follow_without_workers(db_url: str, tmp_path: Path) -> None:
    port = reserve_port()
    with ScriptedLLM() as llm:
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        url = f"http://127.0.0.1:{port}/hooks"
        done = run_cli(
            ["run", "Follow goal", "--thread-id", tid, "--db", db_url, "--webhook-url", url],
            env,
        )
        assert done.returncode == 0, done.stderr
    follower = subprocess.Popen(
        [ENDURO, "webhooks", "deliver", "--follow", "--db", db_url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with Receiver(port=port) as receiver:
            # Every event the run left pending, with no command but the follower.
            pending = _pending_events(db_url, tid)
            assert pending >= 5
            assert receiver.wait_for(lambda hits: len(receiver.accepted()) >= pending, 60)
            follower.send_signal(signal.SIGTERM)
            assert follower.wait(timeout=30) == 0, follower.stderr.read() if follower.stderr else ""
        seqs = [h.seq for h in receiver.accepted()]
        assert seqs == sorted(seqs) and seqs[0] == 1 and len(set(seqs)) == seqs[-1]
    finally:
        follower.kill()
        follower.communicate()
