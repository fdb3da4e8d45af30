"""Named threads on both engines: `--thread-id NAME` makes a thread whose id is the name's
UUID, and every command takes the name or the id (issue 8.5; Studio's side is in
test_langgraph_dev.py)."""

from __future__ import annotations

import json
from pathlib import Path

from clikit import cli_env, run_cli
from enduro import Client
from enduro.names import thread_id_for_name
from fakellm import ScriptedLLM

NAME = "nightly-report-7"


def test_cli_names_a_thread_and_takes_the_name_everywhere(
    db_url: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = cli_env(llm, tmp_path)
    tid = thread_id_for_name(NAME)
    done = run_cli(["run", "Summarise", "--thread-id", NAME, "--db", db_url, "--json"], env)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert (status["thread_id"], status["name"], status["status"]) == (tid, NAME, "completed")
    for ref in (NAME, tid):
        shown = run_cli(["status", ref, "--db", db_url, "--json"], env)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["thread_id"] == tid
        report = run_cli(["report", ref, "--db", db_url], env)
        assert report.returncode == 0 and "Goal: Summarise" in report.stdout
    listed = json.loads(run_cli(["list", "--db", db_url, "--json"], env).stdout)
    assert [(t["thread_id"], t["name"]) for t in listed] == [(tid, NAME)]
    resumed = run_cli(["resume", NAME, "--db", db_url, "--json"], env)
    assert resumed.returncode == 0 and json.loads(resumed.stdout)["thread_id"] == tid
    again = run_cli(["run", "Other", "--thread-id", NAME, "--db", db_url, "--json"], env)
    assert again.returncode == 2
    assert json.loads(again.stdout)["error"]["message"].startswith(f"thread {NAME!r} already")
    hooks = run_cli(["webhooks", "list", NAME, "--db", db_url, "--json"], env)
    assert hooks.returncode == 0 and json.loads(hooks.stdout) == {"endpoints": [], "deliveries": []}


async def test_client_names_threads(db_url: str, llm_env: ScriptedLLM) -> None:
    async with Client(db_url) as client:
        created = await client.create("a goal", thread_id="weekly-digest")
        assert (created.thread_id, created.name) == (
            thread_id_for_name("weekly-digest"),
            "weekly-digest",
        )
        assert await client.resolve("weekly-digest") == created.thread_id
        outcome = await client.resume("weekly-digest")
        assert (outcome.thread_id, outcome.status) == (created.thread_id, "completed")
        assert (await client.status(created.thread_id)).name == "weekly-digest"
        assert [(s.thread_id, s.name) for s in await client.list()] == [
            (created.thread_id, "weekly-digest")
        ]
        unnamed = await client.create("another goal")
        assert unnamed.name is None and (await client.status(unnamed.thread_id)).name is None
