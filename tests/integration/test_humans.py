"""People in the loop through the real CLI: approvals (approve, edit, reject), several
pending at once, ask_human, --approval-timeout, run.waiting / run.resumed events, and budgets
across a wait. Real subprocesses against the scripted model server, on both engines."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from clikit import cli_env
from clikit import run_cli as _run_cli
from fakellm import ScriptedLLM
from receiver import Receiver


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Generous: each call starts a Python process, and CI machines can be loaded.
    return _run_cli(args, env, timeout=300)


def _write(path: str, content: str = "x") -> tuple[str, dict[str, Any]]:
    return ("write_file", {"path": path, "content": content})


def _status(tid: str, db: str, env: dict[str, str]) -> dict[str, Any]:
    done = run_cli(["status", tid, "--db", db, "--json"], env)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _run(db: str, env: dict[str, str], *extra: str) -> tuple[str, Any]:
    tid = str(uuid.uuid4())
    done = run_cli(["run", "Tidy the notes", "--thread-id", tid, "--db", db, "--json", *extra], env)
    return tid, done


def test_three_approvals_pending_at_once_approve_edit_reject(db_url: str, tmp_path: Path) -> None:
    batch = [_write("a.txt"), _write("b.txt"), _write("c.txt")]
    with ScriptedLLM(steps=["Write"], act_script={"s1": [batch]}) as llm:
        env = cli_env(llm, tmp_path)
        tid, done = _run(db_url, env, "--approve", "write_file")
        assert done.returncode == 6, done.stderr
        assert "waiting for a person (3 pending)" in done.stderr
        status = json.loads(done.stdout)
        assert status["status"] == "waiting" and status["resumable"] is False
        pending = status["interrupts"]
        assert len({i["id"] for i in pending}) == 3
        assert {i["kind"] for i in pending} == {"approval"}
        by_path = {i["args"]["path"]: i for i in pending}
        assert set(by_path) == {"a.txt", "b.txt", "c.txt"}
        assert all(i["tool"] == "write_file" and i["created_at"] for i in pending)
        acts = llm.count("act")

        ambiguous = run_cli(["approve", tid, "--db", db_url], env)
        assert ambiguous.returncode == 2 and "pick one with --id" in ambiguous.stderr
        assert by_path["a.txt"]["id"] in ambiguous.stderr
        wrong = run_cli(["answer", tid, "--db", db_url, "--id", by_path["a.txt"]["id"], "hi"], env)
        assert wrong.returncode == 2 and "waits for approval" in wrong.stderr

        one = run_cli(["approve", tid, "--db", db_url, "--id", by_path["a.txt"]["id"]], env)
        assert one.returncode == 6, one.stderr
        left = _status(tid, db_url, env)["interrupts"]
        assert sorted(i["id"] for i in left) == sorted(
            by_path[p]["id"] for p in ("b.txt", "c.txt")
        ), "the others keep their ids"
        assert {i["created_at"] for i in left} == {
            by_path[p]["created_at"] for p in ("b.txt", "c.txt")
        }, "created_at is when each was first raised"
        edited = json.dumps({"path": "b2.txt", "content": "edited"})
        two = run_cli(
            ["approve", tid, "--db", db_url, "--id", by_path["b.txt"]["id"], "--edit", edited],
            env,
        )
        assert two.returncode == 6, two.stderr
        three = run_cli(
            ["reject", tid, "--db", db_url, "--reason", "c is read-only", "--json"], env
        )
        assert three.returncode == 0, three.stderr
        final = json.loads(three.stdout)
        assert final["status"] == "completed" and final["interrupts"] == []
        assert llm.count("act") == acts + 1, "waiting and answering re-ran no model call"
        workspace = tmp_path / "ws" / tid
        assert (workspace / "a.txt").read_text() == "x"
        assert (workspace / "b2.txt").read_text() == "edited"
        assert not (workspace / "b.txt").exists() and not (workspace / "c.txt").exists()
        results = [m["content"] for m in llm.tool_results("s1")]
        assert any("rejected" in r and "c is read-only" in r for r in results), results


def test_ask_human_question_and_answer(db_url: str, tmp_path: Path) -> None:
    ask = ("ask_human", {"question": "Which colour should the logo be?"})
    with ScriptedLLM(steps=["Design"], act_script={"s1": [[ask]]}) as llm:
        env = cli_env(llm, tmp_path)
        # `*` asks approval for every tool, but a question needs no approval of its own.
        tid, done = _run(db_url, env, "--approve", "*")
        assert done.returncode == 6, done.stderr
        [item] = json.loads(done.stdout)["interrupts"]
        assert item["kind"] == "question" and item["tool"] == "ask_human"
        assert item["question"] == "Which colour should the logo be?" and item["args"] is None
        wrong = run_cli(["approve", tid, "--db", db_url], env)
        assert wrong.returncode == 2 and "is a question" in wrong.stderr
        answered = run_cli(["answer", tid, "--db", db_url, "teal, like the old one", "--json"], env)
        assert answered.returncode == 0, answered.stderr
        assert json.loads(answered.stdout)["status"] == "completed"
        assert [m["content"] for m in llm.tool_results("s1")] == ["teal, like the old one"]


def test_approval_timeout_rejects_when_the_thread_is_next_touched(
    db_url: str, tmp_path: Path
) -> None:
    with ScriptedLLM(steps=["Write"], act_script={"s1": [[_write("a.txt")]]}) as llm:
        env = cli_env(llm, tmp_path)
        tid, done = _run(db_url, env, "--approve", "write_file", "--approval-timeout", "1s")
        assert done.returncode == 6, done.stderr
        [item] = json.loads(done.stdout)["interrupts"]
        assert item["expires_at"] is not None
        time.sleep(1.2)
        assert _status(tid, db_url, env)["status"] == "waiting", "status only reads"
        resumed = run_cli(["resume", tid, "--db", db_url, "--json"], env)
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads(resumed.stdout)["status"] == "completed"
        [result] = llm.tool_results("s1")
        assert "no answer within the approval timeout (1 s)" in result["content"]
        assert not (tmp_path / "ws" / tid / "a.txt").exists()


def test_an_approval_after_the_timeout_is_a_rejection(db_url: str, tmp_path: Path) -> None:
    # The timeout is a safety net: an `approve` typed after it expired must not run the call.
    with ScriptedLLM(steps=["Write"], act_script={"s1": [[_write("a.txt")]]}) as llm:
        env = cli_env(llm, tmp_path)
        tid, done = _run(db_url, env, "--approve", "write_file", "--approval-timeout", "1s")
        assert done.returncode == 6, done.stderr
        time.sleep(1.2)
        late = run_cli(["approve", tid, "--db", db_url, "--json"], env)
        assert late.returncode == 0, late.stderr
        assert json.loads(late.stdout)["status"] == "completed"
        [result] = llm.tool_results("s1")
        assert "no answer within the approval timeout (1 s)" in result["content"]
        assert not (tmp_path / "ws" / tid / "a.txt").exists()


def test_waiting_holds_nothing_spends_nothing_and_budgets_hold_after(
    db_url: str, tmp_path: Path
) -> None:
    with ScriptedLLM(steps=["Write"], act_script={"s1": [[_write("a.txt")]]}) as llm:
        env = cli_env(llm, tmp_path)
        tid, done = _run(db_url, env, "--approve", "write_file", "--max-minutes", "0.1")
        assert done.returncode == 6, done.stderr
        before = json.loads(done.stdout)
        calls = llm.count()
        time.sleep(7)  # longer than --max-minutes: waiting is not active time
        again = run_cli(["resume", tid, "--db", db_url, "--json"], env)
        assert again.returncode == 6, "resume without an answer stays waiting"
        after = json.loads(again.stdout)
        assert llm.count() == calls, "a waiting thread runs nothing"
        assert after["usage"]["usd"] == before["usage"]["usd"]
        assert after["usage"]["active_seconds"] == pytest.approx(
            before["usage"]["active_seconds"], abs=0.01
        )
        assert after["segments"] == before["segments"], "no lease was taken"
        # The approved call runs, then the next model call is checked against the limits:
        # the two calls already made use up --max-llm-calls 2, so the run stops there.
        approved = run_cli(["approve", tid, "--db", db_url, "--max-llm-calls", "2", "--json"], env)
        assert approved.returncode == 3, approved.stderr
        final = json.loads(approved.stdout)
        assert (final["status"], final["stop_reason"]) == ("budget_exhausted", "max_llm_calls")
        assert (tmp_path / "ws" / tid / "a.txt").exists()
        assert llm.count("act") == 1


def test_run_waiting_and_run_resumed_events_carry_no_arguments(db_url: str, tmp_path: Path) -> None:
    secret_args = {"path": "secret-plan.txt", "content": "launch codes"}
    script = {"s1": [[("write_file", secret_args)]]}
    with Receiver() as rec, ScriptedLLM(steps=["Write"], act_script=script) as llm:
        env = cli_env(llm, tmp_path)
        tid, done = _run(db_url, env, "--approve", "write_file", "--webhook-url", rec.url)
        assert done.returncode == 6, done.stderr
        [item] = json.loads(done.stdout)["interrupts"]
        assert rec.wait_for(lambda hits: any(b"run.waiting" in h.body for h in hits))
        approved = run_cli(["approve", tid, "--db", db_url, "--webhook-url", rec.url], env)
        assert approved.returncode == 0, approved.stderr
        assert rec.wait_for(lambda hits: any(b"run.completed" in h.body for h in hits))
        events = [h.event for h in rec.accepted()]
        types = [e["type"] for e in events]
        assert (
            types.index("run.waiting") < types.index("run.resumed") < types.index("run.completed")
        )
        waiting = next(e for e in events if e["type"] == "run.waiting")
        assert waiting["data"]["status"] == "waiting"
        assert waiting["data"]["interrupts"] == [
            {"id": item["id"], "kind": "approval", "tool": "write_file"}
        ]
        resumed = next(e for e in events if e["type"] == "run.resumed")
        assert resumed["data"]["interrupts"] == waiting["data"]["interrupts"]
        assert resumed["data"]["resumed_from"]["status"] == "waiting"
        for hit in rec.accepted():
            assert b"launch codes" not in hit.body and b"secret-plan" not in hit.body
