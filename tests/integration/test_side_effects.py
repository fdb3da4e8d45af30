"""Exactly-once side effects: the process is killed with SIGKILL after http_post's request
reached the test's own server and before its result was recorded, then resumed under each
policy. The server counts the effects (and the Idempotency-Key each carried)."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from clikit import ENDURO, cli_env
from clikit import run_cli as _run_cli
from fakellm import ScriptedLLM
from receiver import Answer, Hit, Receiver


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Generous: each call starts a Python process, and CI machines can be loaded.
    return _run_cli(args, env, timeout=300)


def _first_hangs(number: int, _hit: Hit) -> Answer:
    # The first POST takes effect (it is recorded) and never gets its answer: the process
    # dies waiting for it, between the effect and its result.
    return Answer(hang=True) if number == 0 else Answer(200)


def _crash_during_post(
    db: str, tmp_path: Path, llm: ScriptedLLM, rec: Receiver, *extra: str
) -> tuple[str, dict[str, str]]:
    env = cli_env(llm, tmp_path)
    tid = str(uuid.uuid4())
    proc = subprocess.Popen(
        [
            *(ENDURO, "run", "Place the order", "--thread-id", tid, "--db", db),
            *("--post-host", "127.0.0.1", "--allow-private-urls", *extra),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert rec.wait_for(lambda hits: len(hits) == 1, timeout=60), proc.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    status = json.loads(run_cli(["status", tid, "--db", db, "--json"], env).stdout)
    assert (status["status"], status["stop_reason"]) == ("paused", "crashed")
    return tid, env


def _script(url: str) -> dict[str, Any]:
    return {"s1": [[("http_post", {"url": url, "body": {"order": 42}})]]}


def test_http_post_retry_delivers_once_with_one_idempotency_key(
    db_url: str, tmp_path: Path
) -> None:
    with Receiver(_first_hangs) as rec, ScriptedLLM(steps=["Order"]) as llm:
        llm.act_script = _script(rec.url)
        tid, env = _crash_during_post(db_url, tmp_path, llm, rec)
        resumed = run_cli(["resume", tid, "--db", db_url, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        assert len(rec.hits) == 2, "policy retry: the call runs again after the crash"
        keys = {h.headers.get("idempotency-key") for h in rec.hits}
        assert len(keys) == 1, "…with the same Idempotency-Key, so the receiver applies it once"
        [key] = keys
        assert key is not None and key.startswith(f"{tid}:call_")
        assert json.loads(rec.hits[1].body) == {"order": 42}
        [result] = llm.tool_results("s1")
        assert result["content"].startswith("HTTP 200")
        # The result is journaled: resuming again (or a replay) sends nothing more.
        assert run_cli(["resume", tid, "--db", db_url], env).returncode == 0
        assert len(rec.hits) == 2


def test_skip_policy_tells_the_model_the_outcome_is_unknown(db_url: str, tmp_path: Path) -> None:
    with Receiver(_first_hangs) as rec, ScriptedLLM(steps=["Order"]) as llm:
        llm.act_script = _script(rec.url)
        tid, env = _crash_during_post(db_url, tmp_path, llm, rec, "--side-effect", "http_post=skip")
        resumed = run_cli(["resume", tid, "--db", db_url, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        assert len(rec.hits) == 1, "policy skip: never run again"
        [result] = llm.tool_results("s1")
        assert result["content"].startswith("Outcome unknown")


def test_ask_policy_stops_with_an_unknown_outcome_interrupt(db_url: str, tmp_path: Path) -> None:
    with Receiver(_first_hangs) as rec, ScriptedLLM(steps=["Order"]) as llm:
        llm.act_script = _script(rec.url)
        tid, env = _crash_during_post(db_url, tmp_path, llm, rec, "--side-effect", "http_post=ask")
        resumed = run_cli(["resume", tid, "--db", db_url, "--json"], env)
        assert resumed.returncode == 6, resumed.stderr
        [item] = json.loads(resumed.stdout)["interrupts"]
        assert (item["kind"], item["tool"]) == ("unknown_outcome", "http_post")
        assert item["args"] == {"url": rec.url, "body": {"order": 42}}
        assert len(rec.hits) == 1, "nothing is re-sent while a person decides"
        answered = run_cli(["answer", tid, "--db", db_url, "order 42 is in the shop"], env)
        assert answered.returncode == 0, answered.stderr
        assert len(rec.hits) == 1
        [result] = llm.tool_results("s1")
        assert "order 42 is in the shop" in result["content"]


def test_http_post_refuses_hosts_not_allowed(tmp_path: Path) -> None:
    with Receiver() as rec, ScriptedLLM(steps=["Order"]) as llm:
        llm.act_script = {
            "s1": [[("http_post", {"url": rec.url.replace("127.0.0.1", "localhost"), "body": {}})]]
        }
        env = cli_env(llm, tmp_path)
        db = str(tmp_path / "e.sqlite")
        done = run_cli(
            ["run", "g", "--db", db, "--post-host", "127.0.0.1", "--allow-private-urls"], env
        )
        assert done.returncode == 0, done.stderr
        [result] = llm.tool_results("s1")
        assert "not an allowed host" in result["content"] and not rec.hits
        # Without --allow-private-urls an allowed host on loopback is still refused.
        llm.reset()
        llm.act_script = _script(rec.url)
        done = run_cli(["run", "g", "--db", db, "--post-host", "127.0.0.1"], env)
        assert done.returncode == 0, done.stderr
        [result] = llm.tool_results("s1")
        assert "loopback" in result["content"] and not rec.hits
