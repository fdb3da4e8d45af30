"""`--json` answers in every outcome, and a finished run survives signals in its teardown.

Real `enduro` subprocesses. Each case here failed before the fix: argparse errors, config
errors, unknown threads and unreachable databases printed nothing on stdout; an unexpected
error printed a traceback; a SIGTERM or Ctrl-C while the last webhook events were being
flushed ended a completed run with 143 or 4 and no JSON.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from clikit import ENDURO, cli_env, run_cli
from enduro.client import Client
from fakellm import ScriptedLLM
from receiver import Answer, Hit, Receiver


def _one_json(out: str) -> Any:
    """stdout must be exactly one JSON value (one line)."""
    lines = out.splitlines()
    assert len(lines) == 1, out
    return json.loads(lines[0])


def _error(done: subprocess.CompletedProcess[str], exit_code: int, code: str) -> str:
    assert done.returncode == exit_code, done.stderr
    body = _one_json(done.stdout)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert f"enduro: error: {message}" in done.stderr, "the same message on stderr"
    return message


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--json"],
        ["status", "--json"],
        ["run", "g", "--json", "--max-usd", "-1"],
        ["frobnicate", "--json"],
    ],
)
def test_usage_errors_answer_json(argv: list[str], llm: ScriptedLLM, tmp_path: Path) -> None:
    done = run_cli(argv, cli_env(llm, tmp_path))
    message = _error(done, 2, "usage")
    assert "usage:" in done.stderr
    assert message.startswith("enduro")


def test_config_error_answers_json(llm: ScriptedLLM, tmp_path: Path) -> None:
    env = cli_env(llm, tmp_path)
    del env["OPENAI_BASE_URL"]
    done = run_cli(["run", "g", "--db", str(tmp_path / "x.sqlite"), "--json"], env)
    assert "no model endpoint configured" in _error(done, 2, "config")


def test_unknown_thread_answers_json(db_url: str, llm: ScriptedLLM, tmp_path: Path) -> None:
    env = cli_env(llm, tmp_path)
    assert run_cli(["db", "migrate", "--db", db_url], env).returncode == 0
    for command in ("status", "report", "cancel", "resume"):
        done = run_cli([command, "t-nope", "--db", db_url, "--json"], env)
        assert "t-nope" in _error(done, 2, "unknown_thread"), command


@pytest.mark.parametrize(
    "db", ["postgresql://u:secret@127.0.0.1:1/x", "{tmp}/missing/enduro.sqlite"]
)
def test_unreachable_database_answers_json(db: str, llm: ScriptedLLM, tmp_path: Path) -> None:
    env = cli_env(llm, tmp_path)
    for command in (["status", "t-1"], ["list"], ["webhooks", "list"]):
        done = run_cli([*command, "--db", db.format(tmp=tmp_path), "--json"], env)
        message = _error(done, 2, "database_unavailable")
        assert "secret" not in done.stdout + done.stderr, "the password is redacted"
        assert message


@pytest.mark.parametrize("db", ["{tmp}", "/proc/no-such-dir/enduro.sqlite"])
def test_a_sqlite_path_that_cannot_be_opened_is_a_configuration_error(
    db: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    # A directory, or a place where no file can be created: exit 2, no traceback.
    env = cli_env(llm, tmp_path)
    for command in (["run", "g"], ["status", "t-1"], ["list"]):
        done = run_cli([*command, "--db", db.format(tmp=tmp_path), "--json"], env)
        assert _error(done, 2, "database_unavailable"), command
        assert "Traceback" not in done.stderr, done.stderr


def test_unexpected_failure_answers_json_without_a_traceback(
    llm: ScriptedLLM, tmp_path: Path
) -> None:
    garbage = tmp_path / "not-a-database.sqlite"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    done = run_cli(["list", "--db", str(garbage), "--json"], cli_env(llm, tmp_path))
    assert done.returncode in (1, 2), done.stderr
    body = _one_json(done.stdout)
    assert "error" in body and body["error"]["message"]
    assert "Traceback" not in done.stderr


def test_failed_run_answers_with_its_status(db_url: str, tmp_path: Path) -> None:
    with ScriptedLLM() as llm:
        env = cli_env(llm, tmp_path)
        env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"  # nothing listens: every call fails
        done = run_cli(
            ["run", "g", "--db", db_url, "--json", "--max-minutes", "0.05", "-q"], env, 180
        )
    assert done.returncode in (1, 3, 4), done.stderr
    status = _one_json(done.stdout)
    assert status["status"] in ("failed", "budget_exhausted", "paused")
    assert status["thread_id"]


def _hang_on_completion(_n: int, hit: Hit) -> Answer:
    # Every event is taken at once except the last one, which keeps the run's final
    # flush waiting: the moment a signal must not spoil.
    return Answer(hang=hit.event["type"] == "run.completed")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_while_flushing_webhooks_keeps_a_completed_run(
    sig: signal.Signals, db_url: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = cli_env(llm, tmp_path)
    tid = str(uuid.uuid4())
    with Receiver(_hang_on_completion) as rec:
        argv = ["run", "Summarise", "--thread-id", tid, "--db", db_url, "--json"]
        argv += ["--webhook-url", rec.url, "--webhook-timeout", "60"]
        proc = subprocess.Popen(
            [ENDURO, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            assert rec.wait_for(lambda hits: "run.completed" in [h.event["type"] for h in hits])
            # The thread's row says completed once the runner has released it: from then
            # on the process only waits on the last delivery.
            deadline = time.monotonic() + 30
            while asyncio.run(Client(db_url).status(tid)).status != "completed":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert proc.poll() is None, "still flushing"
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    status = _one_json(out)
    assert (status["thread_id"], status["status"]) == (tid, "completed")
    assert "stay in the outbox" in err


def test_webhooks_secret_answers_json(llm: ScriptedLLM, tmp_path: Path) -> None:
    done = run_cli(["webhooks", "secret", "--json"], cli_env(llm, tmp_path))
    assert done.returncode == 0, done.stderr
    assert _one_json(done.stdout)["secret"].startswith("whsec_")
