"""The `enduro` CLI as users run it: real subprocesses, real signals, real kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from clikit import ENDURO
from clikit import cli_env as _env
from clikit import run_cli as _cli
from fakellm import ScriptedLLM

STEPS = ["Collect sources", "Read sources", "Extract facts", "Draft report", "Polish report"]


def _status(tid: str, db: str, env: dict[str, str]) -> dict[str, Any]:
    done = _cli(["status", tid, "--db", db, "--json"], env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _start(tid: str, db: str, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            ENDURO,
            "run",
            "Write a report on durable agents",
            "--thread-id",
            tid,
            "--db",
            db,
            "--json",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def slow_llm() -> Any:
    with ScriptedLLM(steps=STEPS, tool_use=True, latency=0.15) as server:
        yield server


def test_run_to_completion_json_contract(db_url: str, llm: ScriptedLLM, tmp_path: Path) -> None:
    env = _env(llm, tmp_path)
    tid = str(uuid.uuid4())
    done = _cli(
        [
            "run",
            "Summarise durable execution",
            "--thread-id",
            tid,
            "--db",
            db_url,
            "--max-iterations",
            "40",
            "--json",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert set(status) >= {
        "thread_id",
        "status",
        "stop_reason",
        "plan",
        "progress",
        "usage",
        "limits",
        "report",
        "updated_at",
        "forecast",
    }
    assert status["thread_id"] == tid and status["status"] == "completed"
    assert status["forecast"]["steps_done"] == status["progress"]["steps_done"]
    assert status["forecast"]["warning"] is None
    assert status["stop_reason"] is None
    assert status["limits"] == {
        "max_usd": None,
        "max_minutes": None,
        "max_iterations": 40,
        "max_llm_calls": None,
        "max_tool_calls": None,
        "max_tokens": None,
        "deadline": None,
    }
    assert set(status["usage"]) >= {
        "usd",
        "llm_calls",
        "tool_calls",
        "iterations",
        "input_tokens",
        "output_tokens",
        "active_seconds",
    }
    assert status["usage"]["input_tokens"] > 0
    listed = json.loads(_cli(["list", "--db", db_url, "--json"], env).stdout)
    assert [t["thread_id"] for t in listed] == [tid]
    report = _cli(["report", tid, "--db", db_url], env)
    assert report.returncode == 0 and "Final report:" in report.stdout
    again = _cli(["resume", tid, "--db", db_url, "--json"], env)
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "completed"
    assert llm.count("plan") == 1, "resuming a completed thread must not run it again"


def test_sigkill_then_resume_repeats_no_recorded_step(
    db_url: str, slow_llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = _env(slow_llm, tmp_path)
    tid = f"t-{uuid.uuid4().hex[:8]}"
    proc = _start(tid, db_url, env)
    try:
        assert slow_llm.wait_for(1, "review", "s3", timeout=60, answered=True), proc.stderr
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    at_kill = _status(tid, db_url, env)
    assert (at_kill["status"], at_kill["stop_reason"], at_kill["resumable"]) == (
        "paused",
        "crashed",
        True,
    )
    recorded = [s["id"] for s in at_kill["plan"] if s["status"] == "done"]
    assert len(recorded) >= 2
    reviews_then = {s: slow_llm.count("review", s) for s in recorded}
    acts_then = {s: slow_llm.count("act", s) for s in recorded}
    listed = json.loads(_cli(["list", "--db", db_url, "--json"], env).stdout)
    assert listed[0]["resumable"] is True and listed[0]["stop_reason"] == "crashed"

    resumed = _cli(["resume", tid, "--db", db_url, "--json"], env)
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads(resumed.stdout)
    assert final["status"] == "completed" and final["segments"] == 2
    assert [s["status"] for s in final["plan"]] == ["done"] * len(STEPS)
    # Server-side execution counts: nothing a checkpoint recorded ran again.
    assert slow_llm.count("plan") == 1
    assert {s: slow_llm.count("review", s) for s in recorded} == reviews_then
    assert {s: slow_llm.count("act", s) for s in recorded} == acts_then
    assert all(slow_llm.count("review", s["id"]) >= 1 for s in final["plan"])


def test_sigterm_drains_to_a_resumable_pause(
    db_url: str, slow_llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = _env(slow_llm, tmp_path)
    tid = f"t-{uuid.uuid4().hex[:8]}"
    proc = _start(tid, db_url, env)
    assert slow_llm.wait_for(1, "review", "s2", timeout=60, answered=True)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    assert f"enduro resume {tid}" in err
    status = json.loads(out)
    assert (status["status"], status["stop_reason"], status["resumable"]) == (
        "paused",
        "signal",
        True,
    )
    assert "Steps remaining" in status["report"], "a paused thread reports partial results"
    report = _cli(["report", tid, "--db", db_url], env)
    assert "Steps done" in report.stdout
    resumed = _cli(["resume", tid, "--db", db_url, "--json", "-q"], env)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["status"] == "completed"
    assert slow_llm.count("plan") == 1


def test_second_signal_stops_at_once(db_url: str, tmp_path: Path) -> None:
    with ScriptedLLM(steps=STEPS, latency=0.5) as llm:
        env = _env(llm, tmp_path)
        tid = f"t-{uuid.uuid4().hex[:8]}"
        proc = _start(tid, db_url, env)
        assert llm.wait_for(1, "act", timeout=60)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 4, err
        assert time.monotonic() - started < 5
        status = _status(tid, db_url, env)
        assert status["status"] == "paused" and status["resumable"]


def test_cancel_from_another_shell(db_url: str, slow_llm: ScriptedLLM, tmp_path: Path) -> None:
    slow_llm.latency = 0.6  # the run must outlast the start-up of a second `enduro` process
    env = _env(slow_llm, tmp_path)
    tid = f"t-{uuid.uuid4().hex[:8]}"
    proc = _start(tid, db_url, env)
    assert slow_llm.wait_for(1, "review", "s1", timeout=60, answered=True)
    cancel = _cli(["cancel", tid, "--db", db_url], env)
    assert cancel.returncode == 0 and "cancel requested" in cancel.stderr
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 5, err
    status = json.loads(out)
    assert (status["status"], status["stop_reason"]) == ("cancelled", "cancel")
    assert slow_llm.count("review") < len(STEPS)


def test_unknown_thread_and_unreachable_database(llm: ScriptedLLM, tmp_path: Path) -> None:
    env = _env(llm, tmp_path)
    db = str(tmp_path / "e.sqlite")
    _cli(["db", "migrate", "--db", db], env)
    missing = _cli(["resume", "t-nope", "--db", db], env)
    assert missing.returncode == 2 and "unknown thread 't-nope'" in missing.stderr
    down = _cli(["run", "g", "--db", "postgresql://u:secret@127.0.0.1:1/x"], env)
    assert down.returncode == 2
    assert "cannot connect to PostgreSQL" in down.stderr and "secret" not in down.stderr


def test_json_logs_carry_the_thread_id_on_every_line(llm: ScriptedLLM, tmp_path: Path) -> None:
    env = _env(llm, tmp_path)
    tid = str(uuid.uuid4())
    done = _cli(
        [
            "run",
            "g",
            "--thread-id",
            tid,
            "--db",
            str(tmp_path / "l.sqlite"),
            "-q",
            "--log-format",
            "json",
            "--log-level",
            "INFO",
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert records, done.stderr
    assert all(r["thread_id"] == tid for r in records), records
    assert any("segment 1 starting" in r["msg"] for r in records)
