"""The dashboard's JSON API, against `enduro dashboard` on loopback, on both engines."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from clikit import cli_env, run_cli
from dashkit import Dashboard, seed
from fakellm import ScriptedLLM
from receiver import Receiver

STATUS_KEYS = {
    "thread_id",
    "goal",
    "status",
    "stop_reason",
    "resumable",
    "plan",
    "progress",
    "usage",
    "limits",
    "report",
    "updated_at",
    "forecast",
}


def _csrf(client: httpx.Client) -> dict[str, str]:
    """Load a page (which sets the enduro_csrf cookie) and echo the cookie as the page does."""
    client.get("/").raise_for_status()
    return {"X-CSRF-Token": client.cookies["enduro_csrf"]}


def test_pages_are_keyset_paginated_newest_first_and_filtered(
    db_url: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    paused = asyncio.run(seed(db_url, 70))
    done = asyncio.run(seed(db_url, 35, status="completed", goal="Done"))
    newest_first = list(reversed(paused + done))
    env = cli_env(llm, tmp_path)
    with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 40, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/threads", params=params).json()
            seen += [t["thread_id"] for t in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and seen == newest_first
        item = page["items"][0]
        assert set(item) >= STATUS_KEYS - {"plan", "report"} | {"lease"}
        assert "plan" not in item and "report" not in item

        completed = client.get("/api/threads", params={"status": "completed", "limit": 200})
        assert [t["thread_id"] for t in completed.json()["items"]] == list(reversed(done))
        assert completed.json()["next_cursor"] is None
        bad = client.get("/api/threads", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "bad_cursor"
        assert client.get("/api/threads", params={"status": "nope"}).status_code == 422
        assert client.get("/api/threads/nope").json()["error"]["code"] == "unknown_thread"


def test_a_runs_status_events_sse_and_spend(db_url: str, tmp_path: Path) -> None:
    with ScriptedLLM(tool_use=True) as llm, Receiver() as rec:
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        done = run_cli(
            [
                "run",
                "Research <b>tidal</b> pools",
                "--thread-id",
                tid,
                "--db",
                db_url,
                "--max-usd",
                "1",
                "--webhook-url",
                rec.url,
                "--json",
            ],
            env,
        )
        assert done.returncode == 0, done.stderr
        cli_status = json.loads(done.stdout)
        with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
            status = client.get(f"/api/threads/{tid}").json()
            assert set(status) >= STATUS_KEYS | {"lease", "plan_detail"}
            for key in STATUS_KEYS - {"updated_at"}:
                assert status[key] == cli_status[key], key
            assert status["goal"] == "Research <b>tidal</b> pools"
            assert status["plan_detail"][0]["summary"]
            assert status["forecast"]["basis"] == "ledger"

            events = client.get(f"/api/threads/{tid}/events").json()["events"]
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
            assert events[0]["type"] == "run.started" and events[-1]["type"] == "run.completed"
            # What the receiver got, in order (the run stops flushing after a while on a slow
            # machine, so it may not have got the last ones yet).
            delivered = [h.event["type"] for h in rec.accepted()]
            assert delivered and delivered == [e["type"] for e in events][: len(delivered)]
            later = client.get(f"/api/threads/{tid}/events", params={"since": 3}).json()
            assert [e["seq"] for e in later["events"]] == [e["seq"] for e in events[3:]]

            streamed = _read_sse(client, f"/api/threads/{tid}/events?since=2", len(events) - 2)
            assert [int(m["id"]) for m in streamed if m["event"] == "event"] == list(
                range(3, len(events) + 1)
            )
            snapshot = next(json.loads(m["data"]) for m in streamed if m["event"] == "status")
            assert snapshot["status"] == "completed" and snapshot["forecast"] == status["forecast"]

            spend = client.get(f"/api/threads/{tid}/spend").json()
            assert sum(c["calls"] for c in spend["calls"]) == status["usage"]["llm_calls"]
            assert spend["max_usd"] == 1
            finals = [points[-1][1] for points in spend["by_model"].values()]
            assert sum(finals) == pytest.approx(status["usage"]["usd"], abs=1e-6)
            assert set(spend["by_node"]) >= {"plan", "act", "reflect"}

            schema = client.get("/openapi.json").json()
            assert set(schema["paths"]) >= {
                "/api/threads",
                "/api/threads/{thread_id}",
                "/api/threads/{thread_id}/events",
                "/api/threads/{thread_id}/spend",
                "/api/threads/{thread_id}/cancel",
                "/api/threads/{thread_id}/resume",
            }
            assert client.get("/docs").status_code == 404  # Swagger UI loads from a CDN


def _read_sse(client: httpx.Client, path: str, events: int) -> list[dict[str, str]]:
    """Messages of a text/event-stream until `events` events and one status have come."""
    messages: list[dict[str, str]] = []
    current: dict[str, str] = {}
    with client.stream("GET", path, headers={"Accept": "text/event-stream"}, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line == "":
                if current:
                    messages.append(current)
                    current = {}
                kinds = [m["event"] for m in messages]
                if kinds.count("event") >= events and "status" in kinds:
                    break
                continue
            key, _, value = line.partition(":")
            current[key] = value.removeprefix(" ")
    return messages


def test_cancel_needs_csrf_and_follows_the_cli_rules(
    db_url: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    [tid] = asyncio.run(seed(db_url, 1))
    env = cli_env(llm, tmp_path)
    with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
        url = f"/api/threads/{tid}/cancel"
        assert client.post(url).status_code == 403  # no cookie, no header
        headers = _csrf(client)
        assert client.post(url, headers={"X-CSRF-Token": "forged"}).status_code == 403
        foreign = {**headers, "Origin": "https://evil.example"}
        assert client.post(url, headers=foreign).json()["error"]["code"] == "csrf"
        assert client.get(f"/api/threads/{tid}").json()["status"] == "paused"

        ok = client.post(url, headers=headers)
        assert ok.status_code == 200 and ok.json() == {"thread_id": tid, "outcome": "cancelled"}
        assert client.get(f"/api/threads/{tid}").json()["status"] == "cancelled"
        again = client.post(url, headers=headers)
        assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]
        assert client.post("/api/threads/nope/cancel", headers=headers).status_code == 404
        # Resume refuses nonsense limits before starting anything.
        bad = client.post(f"/api/threads/{tid}/resume", headers=headers, json={"max_usd": -1})
        assert bad.status_code == 422


def test_resume_with_a_raised_limit_continues_the_run(db_url: str, tmp_path: Path) -> None:
    with ScriptedLLM(tool_use=True) as llm:
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        done = run_cli(
            [
                "run",
                "Research tidal pools",
                "--thread-id",
                tid,
                "--db",
                db_url,
                "--max-iterations",
                "2",
                "--json",
            ],
            env,
        )
        assert done.returncode == 3, done.stderr
        with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
            before = client.get(f"/api/threads/{tid}").json()
            assert before["status"] == "budget_exhausted" and before["resumable"]
            started = client.post(
                f"/api/threads/{tid}/resume", headers=_csrf(client), json={"max_iterations": 40}
            )
            assert started.status_code == 202, started.text
            status = _wait_for(client, tid, lambda s: s["status"] == "completed")
            assert status["limits"]["max_iterations"] == 40 and status["segments"] == 2
            again = client.post(f"/api/threads/{tid}/resume", headers=_csrf(client), json={})
            assert again.status_code == 409


def _wait_for(client: httpx.Client, tid: str, ok: Any, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get(f"/api/threads/{tid}").json()
        if ok(status):
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.3)


def _waiting(db_url: str, env: dict[str, str], *extra: str) -> tuple[str, dict[str, Any]]:
    tid = str(uuid.uuid4())
    done = run_cli(
        ["run", "Tidy the notes", "--thread-id", tid, "--db", db_url, "--json", *extra], env
    )
    assert done.returncode == 6, done.stderr
    return tid, json.loads(done.stdout)


def test_a_waiting_tool_call_is_approved_from_the_api(db_url: str, tmp_path: Path) -> None:
    write = ("write_file", {"path": "a.txt", "content": "from the dashboard"})
    with ScriptedLLM(steps=["Write"], act_script={"s1": [[write]]}) as llm:
        env = cli_env(llm, tmp_path)
        tid, _ = _waiting(db_url, env, "--approve", "write_file")
        with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
            status = client.get(f"/api/threads/{tid}").json()
            [item] = status["interrupts"]
            assert status["status"] == "waiting" and item["kind"] == "approval"
            assert item["args"] == {"path": "a.txt", "content": "from the dashboard"}
            headers = _csrf(client)
            assert client.post(f"/api/threads/{tid}/approve").status_code == 403  # no CSRF
            wrong = client.post(f"/api/threads/{tid}/answer", headers=headers, json={"text": "hi"})
            assert wrong.status_code == 409 and "waits for approval" in wrong.text
            ok = client.post(
                f"/api/threads/{tid}/approve", headers=headers, json={"interrupt_id": item["id"]}
            )
            assert ok.status_code == 202, ok.text
            final = _wait_for(client, tid, lambda s: s["status"] == "completed")
            assert final["interrupts"] == []
            again = client.post(f"/api/threads/{tid}/approve", headers=headers)
            assert again.status_code == 409
        assert (tmp_path / "ws" / tid / "a.txt").read_text() == "from the dashboard"


def test_a_waiting_question_is_answered_from_the_api(db_url: str, tmp_path: Path) -> None:
    ask = ("ask_human", {"question": "Which <b>colour</b>?"})
    with ScriptedLLM(steps=["Design"], act_script={"s1": [[ask]]}) as llm:
        env = cli_env(llm, tmp_path)
        tid, status = _waiting(db_url, env)
        [item] = status["interrupts"]
        with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
            headers = _csrf(client)
            empty = client.post(f"/api/threads/{tid}/answer", headers=headers, json={"text": ""})
            assert empty.status_code == 422
            ok = client.post(
                f"/api/threads/{tid}/answer",
                headers=headers,
                json={"interrupt_id": item["id"], "text": "-teal, like the old one"},
            )
            assert ok.status_code == 202, ok.text
            _wait_for(client, tid, lambda s: s["status"] == "completed")
        assert [m["content"] for m in llm.tool_results("s1")] == ["-teal, like the old one"]


def test_a_named_thread_is_listed_and_found_by_its_name(db_url: str, tmp_path: Path) -> None:
    # The CLI takes a thread's name or its id everywhere; so does the API.
    with ScriptedLLM() as llm:
        env = cli_env(llm, tmp_path)
        done = run_cli(
            ["run", "g", "--thread-id", "nightly-7", "--db", db_url, "--max-iterations", "1"],
            env,
        )
        assert done.returncode in (0, 3), done.stderr
        with Dashboard(db_url, env) as dash, httpx.Client(base_url=dash.url) as client:
            [row] = client.get("/api/threads").json()["items"]
            assert row["name"] == "nightly-7"
            by_name = client.get("/api/threads/nightly-7")
            assert by_name.status_code == 200, by_name.text
            assert by_name.json()["thread_id"] == row["thread_id"]
            assert client.get("/api/threads/nightly-7/spend").status_code == 200
            events = client.get("/api/threads/nightly-7/events")
            assert events.status_code == 200
            assert events.json()["thread_id"] == row["thread_id"]
            assert client.get("/api/threads/nightly-8").status_code == 404
