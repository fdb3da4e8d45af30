"""The database goes away for a while: a run waits it out like a provider outage, and pauses
(exit 4, resumable, `database_unreachable: …`) when it lasts longer than
--db-outage-timeout. PostgreSQL through a proxy that drops every connection and refuses new
ones (tests/pgproxy.py); SQLite through another process holding the write lock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from clikit import ENDURO, cli_env, run_cli
from enduro.budgets.ledger import Caps, Ledger
from enduro.storage import open_backend
from enduro.storage import sqlite as db_module
from enduro.storage.outage import DatabaseUnreachable, OutagePolicy, run_time_limit
from fakellm import Fault, ScriptedLLM
from pgproxy import PgProxy
from receiver import Receiver

GOAL = "Write a report on durable agents"


@pytest.fixture
def proxy(pg_url: str) -> Iterator[PgProxy]:
    with PgProxy.for_url(pg_url) as running:
        yield running


def _start(tid: str, db: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ENDURO, "run", GOAL, "--thread-id", tid, "--db", db, "--json", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


# -- the CLI, as users run it ---------------------------------------------------------------


def test_short_outage_is_waited_out_and_the_answer_is_paid_once(
    pg_url: str, proxy: PgProxy, tmp_path: Path
) -> None:
    with ScriptedLLM() as llm, Receiver() as receiver:
        # The first act call is answered 2 s after it arrives, in the middle of the outage.
        llm.push(Fault(kind="act", delay=2.0))
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        proc = _start(
            tid, proxy.url(pg_url), env, "--db-outage-timeout", "30", "--webhook-url", receiver.url
        )
        try:
            assert llm.wait_for(1, "act", timeout=60), "the run never reached act"
            proxy.outage(4.0)
        finally:
            code, out, err = _finish(proc)
        assert code == 0, err
        assert "Traceback" not in err
        status = json.loads(out)
        assert status["status"] == "completed"
        # The answer received while the database was away was settled once it came back,
        # not asked (and paid) again.
        assert llm.count("act", "s1") == 1
        assert status["usage"]["llm_calls"] == llm.count()
        assert status["usage"]["unsettled_calls"] == 0
        assert proxy.accepted > 1  # it did reconnect through the proxy
        # Progress events written around the outage all went out, in order, none lost.
        assert receiver.wait_for(lambda _: "run.completed" in receiver.types())
        seqs = sorted({hit.seq for hit in receiver.accepted()})
        assert seqs == list(range(1, len(seqs) + 1))


def test_long_outage_pauses_resumably_then_resume_completes(
    pg_url: str, proxy: PgProxy, tmp_path: Path
) -> None:
    with ScriptedLLM() as llm, Receiver() as receiver:
        llm.push(Fault(kind="act", delay=1.0))
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        url = proxy.url(pg_url)
        proc = _start(tid, url, env, "--db-outage-timeout", "2", "--webhook-url", receiver.url)
        try:
            assert llm.wait_for(1, "act", timeout=60), "the run never reached act"
            proxy.cut()
            code, out, err = _finish(proc, timeout=90)
        finally:
            proxy.restore()
        assert code == 4, err
        assert "Traceback" not in err
        status = json.loads(out)  # exactly one JSON object on stdout
        assert status["thread_id"] == tid
        assert status["status"] == "paused" and status["resumable"] is True
        assert status["stop_reason"].startswith("database_unreachable: ")

        shown = run_cli(["status", tid, "--db", url, "--json"], env)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"] == "paused"
        resumed = run_cli(["resume", tid, "--db", url, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        final = json.loads(resumed.stdout)
        assert final["status"] == "completed"
        assert [s["status"] for s in final["plan"]] == ["done"] * len(final["plan"])
        assert llm.count("plan") == 1
        # The act answer that arrived during the outage was kept, settled on resume and
        # used: asked (and paid) once, every ledger row settled.
        assert llm.count("act", "s1") == 1
        assert final["usage"]["llm_calls"] == llm.count()
        assert final["usage"]["unsettled_calls"] == 0
        assert not any((tmp_path / "ws" / ".enduro-held").rglob("*.json"))
        # Webhooks went quiet during the outage and resumed after it, in order.
        assert receiver.wait_for(lambda _: "run.completed" in receiver.types())
        seqs = sorted({hit.seq for hit in receiver.accepted()})
        assert seqs == list(range(1, len(seqs) + 1))
        assert "run.resumed" in receiver.types()


# -- the pool and the policy, in process ----------------------------------------------------


def _named(url: str, name: str) -> str:
    return f"{url}&application_name={quote(name)}"


async def test_burst_of_killed_connections_costs_the_next_query_nothing(
    pg_url: str, pg_admin_url: str
) -> None:
    name = f"burst-{uuid.uuid4().hex[:8]}"
    async with open_backend(_named(pg_url, name)) as backend:
        # Eight connections busy at once: the pool grows to hold them all.
        await asyncio.gather(*(backend.db.fetchone("SELECT pg_sleep(1.5)") for _ in range(8)))
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed is not None and killed[0] >= 6

        started = time.monotonic()
        assert await backend.db.fetchone("SELECT 1 AS one") == {"one": 1}
        assert time.monotonic() - started < 5.0  # psycopg_pool's own check: ~30 s
        config: Any = {"configurable": {"thread_id": "none", "checkpoint_ns": ""}}
        assert await backend.saver.aget_tuple(config) is None
        assert time.monotonic() - started < 5.0


async def test_statements_wait_out_an_outage_and_give_up_after_the_timeout(
    pg_url: str, proxy: PgProxy
) -> None:
    policy = OutagePolicy(timeout=15.0)
    async with open_backend(proxy.url(pg_url), outage=policy) as backend:
        ledger = Ledger(backend.db)
        proxy.outage(2.0)
        started = time.monotonic()
        call_id = await ledger.reserve(
            thread_id="t", node="act", model="m", usd_nano=5, tokens=1, caps=Caps()
        )
        assert 1.5 < time.monotonic() - started < 12.0
        assert (await ledger.totals("t")).open_calls == 1

        policy.timeout = 1.0
        proxy.cut()
        with pytest.raises(DatabaseUnreachable) as caught:
            await ledger.mark_lost(call_id, "lost")
        assert caught.value.stop_reason.startswith("database_unreachable: ")
        started = time.monotonic()
        with pytest.raises(DatabaseUnreachable):  # past the timeout: one attempt, no wait
            await ledger.totals("t")
        assert time.monotonic() - started < 3.0

        proxy.restore()
        policy.timeout = 15.0
        started = time.monotonic()
        assert (await ledger.totals("t")).open_calls == 1
        assert time.monotonic() - started < 8.0  # back within the pool's reconnect backoff
        assert policy.down_for is None


async def test_sqlite_locked_by_another_process_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Short busy timeout, so the outage policy's retries (not SQLite's own wait) are tested.
    monkeypatch.setattr(db_module, "SQLITE_BUSY_MS", 100)
    path = tmp_path / "enduro.sqlite"
    policy = OutagePolicy(timeout=20.0)
    async with open_backend(str(path), outage=policy) as backend:
        ledger = Ledger(backend.db)
        holder = sqlite3.connect(path, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(1.5, holder.rollback)
        timer.start()
        try:
            started = time.monotonic()
            await ledger.reserve(
                thread_id="t", node="act", model="m", usd_nano=5, tokens=1, caps=Caps()
            )
            assert time.monotonic() - started >= 1.0
            assert (await ledger.totals("t")).open_calls == 1

            policy.timeout = 0.5
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(DatabaseUnreachable) as caught:
                await backend.db.execute(
                    "UPDATE enduro_spend SET detail = 'x' WHERE thread_id = %s", ("t",)
                )
            assert "locked" in caught.value.detail
        finally:
            timer.cancel()
            holder.rollback()
            holder.close()
        policy.timeout = 20.0
        assert await backend.db.execute("UPDATE enduro_spend SET detail = 'y'") == 1


async def test_an_outage_is_not_waited_out_past_the_runs_time_limit(
    pg_url: str, proxy: PgProxy
) -> None:
    async with open_backend(proxy.url(pg_url), outage=OutagePolicy(timeout=60.0)) as backend:
        proxy.cut()
        try:
            started = time.monotonic()
            with run_time_limit((1.0, "max_minutes")), pytest.raises(DatabaseUnreachable) as caught:
                await backend.db.fetchone("SELECT 1 AS one")
            assert time.monotonic() - started < 10.0  # not the 60 s outage timeout
            assert "max_minutes ran out" in caught.value.stop_reason
        finally:
            proxy.restore()


async def test_open_backend_takes_the_timeout_from_the_environment(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `langgraph dev`'s saver and a worker get when nobody passes a policy.
    monkeypatch.setenv("ENDURO_DB_OUTAGE_TIMEOUT", "7")
    async with open_backend(db_url) as backend:
        assert backend.outage.timeout == 7.0
