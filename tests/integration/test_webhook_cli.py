"""Webhooks through the `enduro` CLI as users run it: real processes, kill -9, a receiver
that is down and comes back, `enduro webhooks …`, and configuration errors."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from clikit import ENDURO
from clikit import cli_env as _env
from clikit import run_cli as _cli
from enduro.cli import main
from enduro.webhooks.config import new_secret
from enduro.webhooks.signing import Signer, delivery_headers
from fakellm import ScriptedLLM
from receiver import Receiver, always, reserve_port

STEPS = ["Collect sources", "Read sources", "Extract facts", "Draft report", "Polish report"]


def _listing(tid: str, db: str, env: dict[str, str], *flags: str) -> dict[str, Any]:
    done = _cli(["webhooks", "list", tid, "--db", db, "--json", *flags], env)
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


def test_sigkill_with_receiver_down_then_resume_delivers_every_event_in_order(
    db_url: str, tmp_path: Path
) -> None:
    secret = new_secret()
    port = reserve_port()
    url = f"http://127.0.0.1:{port}/hooks"
    tid = str(uuid.uuid4())
    with ScriptedLLM(steps=STEPS, tool_use=True, latency=0.15) as llm:
        env = _env(llm, tmp_path, ENDURO_WEBHOOK_SECRET=secret)
        proc = subprocess.Popen(
            [
                ENDURO,
                "run",
                "Write a report",
                "--thread-id",
                tid,
                "--db",
                db_url,
                "--webhook-url",
                url,
                "--webhook-heartbeat",
                "0.2",
                "-q",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert llm.wait_for(1, "review", "s3", timeout=60, answered=True)
            time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        before = _listing(tid, db_url, env)["deliveries"]
        assert len(before) >= 8 and {d["state"] for d in before} == {"pending"}
        assert any(d["attempts"] >= 1 for d in before), "the dead receiver was never tried"
        assert secret not in json.dumps(before)

        with Receiver(secret=secret, port=port) as rec:
            resumed = _cli(["resume", tid, "--db", db_url, "--json", "-q"], env)
            assert resumed.returncode == 0, resumed.stderr
            assert json.loads(resumed.stdout)["status"] == "completed"
            hits = list(rec.hits)
        after = _listing(tid, db_url, env, "--all")["deliveries"]

    seq_ids = {d["seq"]: d["event_id"] for d in after}
    assert sorted(seq_ids) == list(range(1, len(seq_ids) + 1))
    assert {d["state"] for d in after} == {"delivered"}
    first_seen: list[int] = []
    ids: dict[int, set[str]] = {}
    for hit in hits:
        assert hit.verified and hit.status == 200
        ids.setdefault(hit.seq, set()).add(hit.headers["webhook-id"])
        if hit.seq not in first_seen:
            first_seen.append(hit.seq)
    assert first_seen == sorted(seq_ids), "every event reaches the receiver, in seq order"
    assert all(ids[s] == {seq_ids[s]} for s in seq_ids), "duplicates only with the same id"
    types = [h.event["type"] for h in hits]
    assert types[0] == "run.started" and "run.resumed" in types and types[-1] == "run.completed"
    resumed_event = hits[types.index("run.resumed")].event["data"]
    assert resumed_event["resumed_from"] == {"status": "paused", "stop_reason": "crashed"}


def test_webhooks_list_retry_deliver(db_url: str, tmp_path: Path, llm: ScriptedLLM) -> None:
    tid = str(uuid.uuid4())
    env = _env(llm, tmp_path)
    with Receiver(always(500)) as rec:
        done = _cli(
            [
                "run",
                "g",
                "--thread-id",
                tid,
                "--db",
                db_url,
                "-q",
                "--max-iterations",
                "1",
                "--webhook-url",
                rec.url,
                "--webhook-timeout",
                "2",
            ],
            env,
        )
        assert done.returncode == 3, done.stderr
        assert "webhook run.started seq 1" in done.stderr and "failed (HTTP 500)" in done.stderr
        listing = _listing(tid, db_url, env)
        (endpoint,) = listing["endpoints"]
        assert endpoint["state"] == "active" and endpoint["secret_fingerprint"] is None
        pending = listing["deliveries"]
        assert [d["seq"] for d in pending] == list(range(1, len(pending) + 1))
        assert pending[0]["attempts"] >= 1 and pending[0]["last_error"] == "HTTP 500"
        human = _cli(["webhooks", "list", tid, "--db", db_url], env)
        assert "last: HTTP 500" in human.stderr and endpoint["endpoint_id"] in human.stderr

        still = _cli(["webhooks", "deliver", tid, "--db", db_url], env)
        assert still.returncode == 1 and "still pending" in still.stderr

        rec.script = always(200)
        sent = _cli(["webhooks", "retry", tid, "--db", db_url, "--json"], env)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["pending"] == 0
        assert [h.seq for h in rec.accepted()] == [d["seq"] for d in pending]
        assert _cli(["webhooks", "deliver", "--db", db_url], env).returncode == 0


def test_cancel_of_a_stopped_thread_sends_run_cancelled(
    db_url: str, tmp_path: Path, llm: ScriptedLLM
) -> None:
    tid, secret = str(uuid.uuid4()), new_secret()
    env = _env(llm, tmp_path, ENDURO_WEBHOOK_SECRET=secret)
    with Receiver(secret=secret) as rec:
        done = _cli(
            [
                "run",
                "g",
                "--thread-id",
                tid,
                "--db",
                db_url,
                "-q",
                "--max-iterations",
                "1",
                "--webhook-url",
                rec.url,
            ],
            env,
        )
        assert done.returncode == 3, done.stderr
        cancel = _cli(["cancel", tid, "--db", db_url], env)
        assert cancel.returncode == 0, cancel.stderr
        types = rec.types()
    assert types[-2:] == ["run.budget_exhausted", "run.cancelled"]
    last = rec.accepted()[-1].event["data"]
    assert (last["status"], last["stop_reason"]) == ("cancelled", "cancel")


def test_listen_verifies_dedupes_and_prints(tmp_path: Path) -> None:
    secret, port = new_secret(), reserve_port()
    proc = subprocess.Popen(
        [ENDURO, "webhooks", "listen", "--port", str(port), "--secret", secret, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(100):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)

        def send(seq: int, event_id: str, key: str | None) -> int:
            data = {
                "thread_id": "t-1",
                "seq": seq,
                "status": "running",
                "progress": {"steps_done": 1, "steps_total": 2, "percent": 50.0},
            }
            body = json.dumps({"type": "step.completed", "timestamp": "x", "data": data})
            headers = delivery_headers(event_id, body, Signer(key) if key else None)
            return httpx.post(url, content=body, headers=headers, timeout=5).status_code

        assert send(2, "evt_b", secret) == 204
        assert send(2, "evt_b", secret) == 204  # a retry
        assert send(1, "evt_a", secret) == 204  # late
        assert send(3, "evt_c", new_secret()) == 401
        assert send(3, "evt_c", None) == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(x["webhook_id"], x["verdict"]) for x in lines] == [
        ("evt_b", "new"),
        ("evt_b", "duplicate"),
        ("evt_a", "stale"),
    ]
    assert err.count("rejected delivery 'evt_c'") == 2


def test_listen_plain_progress_line() -> None:
    from enduro.webhooks.listen import progress_line

    line = progress_line(
        {
            "type": "step.started",
            "data": {
                "thread_id": "t-1",
                "seq": 4,
                "status": "running",
                "progress": {
                    "steps_done": 1,
                    "steps_total": 4,
                    "percent": 25.0,
                    "eta_seconds": 125,
                },
                "current_step": {"id": "s2", "title": "Read"},
                "usage": {"llm_calls": 3, "usd": 0.5},
            },
        }
    )
    assert line == (
        "[t-1] #4 step.started · 1/4 25.0% · running · s2 'Read' · eta 2m05s · "
        "$0.5000 · 3 model calls"
    )


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--webhook-url", "notaurl"], {}, "'notaurl'"),
        (["--webhook-url", "https://ok.example/x", "--webhook-url", "ftp://x/y"], {}, "ftp"),
        (["--webhook-secret", "abc123"], {}, "must start with 'whsec_'"),
        ([], {"ENDURO_WEBHOOK_URL": "https://ok.example/x,http://"}, "'http://' has no host"),
        ([], {"ENDURO_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "decodes to 5 bytes"),
    ],
)
def test_bad_webhook_configuration_is_exit_2_before_anything_runs(
    argv: list[str],
    env: dict[str, str],
    needle: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("ENDURO_WEBHOOK_URL", "ENDURO_WEBHOOK_SECRET", "ENDURO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.chdir(tmp_path)
    assert main(["run", "a goal", *argv]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("enduro: error: webhook")
    assert not Path(".enduro").exists(), "a refused run must not create a database"


def test_listen_without_a_secret_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ENDURO_WEBHOOK_SECRET", raising=False)
    assert main(["webhooks", "listen", "--port", "0"]) == 2
    assert "--no-verify" in capsys.readouterr().err
