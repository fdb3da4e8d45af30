"""`enduro worker` processes for tests: started with a short lease, always reaped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from clikit import ENDURO, run_cli
from enduro.budgets.report import load_spend
from enduro.context import ContextOverrides, EnduroContext
from enduro.storage.backend import open_backend
from enduro.workers.submit import submit_new

# A short lease (and with it procrastinate's stalled-worker timeout) keeps recovery tests
# to seconds; every process of a test must agree on it, so it is in the env of all of them.
# Not shorter: on a loaded 2-core CI machine a worker's event loop can stall for seconds
# while it starts, and a lease that short would have the others declare it dead.
LEASE_SECONDS = "8"


class Workers:
    """Worker subprocesses of one test; `close()` kills whatever is still running."""

    def __init__(self, db: str, env: dict[str, str], logs: Path) -> None:
        self.db = db
        self.env = {**env, "ENDURO_LEASE_SECONDS": LEASE_SECONDS}
        self.logs = logs
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *extra: str, concurrency: int = 10) -> subprocess.Popen[str]:
        log = (self.logs / f"worker-{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [
                ENDURO,
                "worker",
                "--db",
                self.db,
                "--concurrency",
                str(concurrency),
                "--log-level",
                "INFO",
                *extra,
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def log_of(self, proc: subprocess.Popen[str]) -> str:
        return (self.logs / f"worker-{self.procs.index(proc)}.log").read_text()

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--db", self.db], self.env, timeout=timeout)

    def detach(self, goal: str, thread_id: str, *extra: str) -> dict[str, Any]:
        done = self.cli("run", goal, "--thread-id", thread_id, "--detach", "--json", *extra)
        assert done.returncode == 0, done.stderr
        status: dict[str, Any] = json.loads(done.stdout)
        return status

    def submit(self, goals: dict[str, str], **overrides: Any) -> None:
        """Queue many threads ({thread id: goal}) in-process, as `run --detach` does (one
        CLI process per thread takes seconds each on a loaded machine)."""

        async def go() -> None:
            context = EnduroContext(workspace=self.env["ENDURO_WORKSPACE"]).with_overrides(
                ContextOverrides(**overrides)
            )
            async with open_backend(self.db) as backend:
                for tid, goal in goals.items():
                    await submit_new(backend, goal, context, thread_id=tid)

        asyncio.run(go())

    def status(self, thread_id: str) -> dict[str, Any]:
        done = self.cli("status", thread_id, "--json")
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def statuses(self) -> dict[str, str]:
        """{thread id: status} straight from the database (a CLI call per poll is slow)."""
        with psycopg.connect(self.db) as conn:
            rows = conn.execute("SELECT thread_id, status FROM enduro_threads").fetchall()
        return {tid: status for tid, status in rows}

    def spent_usd(self, thread_id: str) -> float:
        async def read() -> float:
            async with open_backend(self.db, migrate_schema=False) as backend:
                return float((await load_spend(backend.db, thread_id)).usage()["usd"])

        return asyncio.run(read())

    def holding(self, pid: int) -> list[str]:
        """Threads the worker process `pid` is advancing now (its `doing` jobs)."""
        with psycopg.connect(self.db) as conn:
            rows = conn.execute(
                "SELECT j.lock FROM procrastinate_jobs j JOIN enduro_workers w"
                " ON w.worker_id = j.worker_id WHERE j.status = 'doing' AND w.pid = %s",
                (pid,),
            ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


@contextlib.contextmanager
def workers(db: str, env: dict[str, str], logs: Path) -> Iterator[Workers]:
    pool = Workers(db, env, logs)
    try:
        yield pool
    finally:
        pool.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
