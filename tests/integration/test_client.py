"""`enduro.Client` on both engines: the same answers as the CLI, typed, and the CLI's read
commands import nothing of the graph on a real thread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clikit import cli_env, run_cli
from enduro import Client, EnduroContext, StopReason, ThreadStatus, UnknownThread
from fakellm import ScriptedLLM

FORBIDDEN = ("langgraph.graph", "langgraph.pregel", "langchain_openai")


def _roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


async def test_client_drives_and_reads_a_thread_like_the_cli(
    db_url: str, llm_env: ScriptedLLM, tmp_path: Path
) -> None:
    async with Client(db_url) as client:
        created = await client.create("Summarise durable execution", context=EnduroContext())
        assert isinstance(created, ThreadStatus)
        assert (created.status, created.resumable) == ("paused", True)
        outcome = await client.resume(created.thread_id)
        assert (outcome.status, outcome.exit_code) == ("completed", 0)
        status = await client.status(created.thread_id)
        listed = await client.list()
        report = await client.report(created.thread_id)
    assert (status.status, status.stop_reason, status.exit_code) == ("completed", None, 0)
    assert status.usage["llm_calls"] > 0 and status.report == report and report
    env = cli_env(llm_env, tmp_path)
    cli = run_cli(["status", created.thread_id, "--db", db_url, "--json"], env)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == _roundtrip(status.to_json()), "to_json is the contract"
    cli_list = run_cli(["list", "--db", db_url, "--json"], env)
    assert json.loads(cli_list.stdout) == [item.to_json() for item in listed]


async def test_cancel_and_unknown_threads(db_url: str, llm_env: ScriptedLLM) -> None:
    async with Client(db_url) as client:
        first = await client.create("one")
        result = await client.cancel(first.thread_id)
        assert result.action == "cancelled"
        assert (result.status.status, result.status.reason) == ("cancelled", StopReason.CANCEL)
        again = await client.cancel(first.thread_id)
        assert again.action == "already_finished"
        with pytest.raises(UnknownThread, match="unknown thread 'nope'"):
            await client.status("nope")
    # Without a context manager each call opens and closes the database itself.
    assert (await Client(db_url).status(first.thread_id)).status == "cancelled"


def test_read_commands_import_nothing_of_the_graph(
    db_url: str, llm: ScriptedLLM, tmp_path: Path
) -> None:
    env = cli_env(llm, tmp_path)
    made = run_cli(["run", "g", "--db", db_url, "--json", "-q"], env)
    assert made.returncode == 0, made.stderr
    tid = json.loads(made.stdout)["thread_id"]
    for command in (
        ["status", tid],
        ["list"],
        ["report", tid],
        ["cancel", tid],
        ["webhooks", "list"],
    ):
        argv = [sys.executable, "-X", "importtime", "-m", "enduro.cli", *command]
        done = subprocess.run(
            [*argv, "--db", db_url, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        names = {
            line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line
        }
        assert sorted(n for n in names if n.startswith(FORBIDDEN)) == [], command
