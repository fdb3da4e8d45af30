"""`langgraph dev` serves enduro's graph, unchanged, on enduro's own saver.

A real `langgraph dev` subprocess is started from the repository's `langgraph.json` (graph
`enduro`, `checkpointer.path` -> enduro.checkpointing.dev) against the scripted model server
and a fresh database, on both engines. Through `langgraph_sdk` the test checks that:

- the assistant exposes the per-run knobs as its context schema (Studio's form), each with
  a description (the form's help text);
- a run created on the dev server completes, with tool calls, and writes its checkpoints;
- threads started by the `enduro` CLI in another process can be read from the dev server,
  and one stopped by a limit can be continued there;
- a CLI thread waiting for an approval shows the same interrupt there, and
  `Command(resume={interrupt_id: answer})` through the SDK continues it;
- a thread the CLI started under a name (`--thread-id nightly-report-7`) opens there too.

The server must stay offline: analytics and the version check are switched off, LangSmith
variables are removed, and every proxy variable points at a local trap that records any
connection, so an attempt to reach the internet fails at once and fails the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from fakellm import ScriptedLLM

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GOAL = "Write a short field guide to tidal pools"
STARTUP_TIMEOUT = 90.0
RUN_TIMEOUT = 120.0
CLI_TIMEOUT = 120.0


class ProxyTrap:
    """A TCP listener that the proxy variables point at: it records and drops every
    connection, so any HTTP client that honours them cannot reach the internet."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hits: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="proxy-trap", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    first = conn.recv(200)
                except OSError:
                    first = b""
                self.hits.append(first.split(b"\r\n", 1)[0] or b"<no request line>")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class DevServer:
    url: str
    env: dict[str, str]
    db: str
    workspace: Path
    llm: ScriptedLLM
    log: Path
    trap: ProxyTrap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _offline_env(llm: ScriptedLLM, db: str, workspace: Path, trap: ProxyTrap) -> dict[str, str]:
    drop = ("LANGSMITH_", "LANGCHAIN_", "LANGGRAPH_", "OPENAI_", "ENDURO_")
    proxies = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(drop) and k.upper() not in proxies
    }
    env.update(
        OPENAI_BASE_URL=llm.base_url,
        ENDURO_DATABASE_URL=db,
        ENDURO_WORKSPACE=str(workspace),
        # No CLI analytics (a background POST to Supabase) and no PyPI version check.
        LANGGRAPH_CLI_NO_ANALYTICS="1",
        LANGGRAPH_NO_VERSION_CHECK="true",
        # Anything else that tries the internet through a proxy-aware client lands here.
        HTTP_PROXY=trap.url,
        HTTPS_PROXY=trap.url,
        ALL_PROXY=trap.url,
        http_proxy=trap.url,
        https_proxy=trap.url,
        all_proxy=trap.url,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def _app_dir(tmp_path: Path) -> Path:
    """The repository's own langgraph.json next to its src/, in a directory of the test's
    own, so the in-memory runtime's `.langgraph_api/` files stay out of the repository."""
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy2(REPO / "langgraph.json", app / "langgraph.json")
    (app / "src").symlink_to(REPO / "src", target_is_directory=True)
    return app


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, port: int) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"langgraph dev exited with {proc.returncode} before it was ready:\n"
                + log.read_text(errors="replace"),
                pytrace=False,
            )
        # It picks another port, and says so, when the one asked for was taken meanwhile.
        found = re.search(r"API: \S*?(http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if found:
            url = found.group(1)
        try:
            if httpx.get(f"{url}/ok", timeout=2.0, trust_env=False).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(
        f"langgraph dev not ready on {url}/ok within {STARTUP_TIMEOUT:.0f}s:\n"
        + log.read_text(errors="replace"),
        pytrace=False,
    )


@pytest.fixture
def dev_server(db_url: str, tmp_path: Path) -> Iterator[DevServer]:
    """`langgraph dev` on a free port, on `db_url` (SQLite file or a Postgres schema)."""
    trap = ProxyTrap()
    llm = ScriptedLLM(tool_use=True).start()
    workspace = tmp_path / "workspaces"
    env = _offline_env(llm, db_url, workspace, trap)
    log = tmp_path / "langgraph-dev.log"
    port = _free_port()
    # --no-reload: other edits to src/ must not restart the server in the middle of a test.
    cmd = [
        str(BIN / "langgraph"),
        "dev",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--no-browser",
        "--no-reload",
    ]
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=_app_dir(tmp_path),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        url = _wait_ready(proc, log, port)
        print(f"langgraph dev ready in {time.monotonic() - started:.1f}s at {url}")
        yield DevServer(url, env, db_url, workspace, llm, log, trap)
    finally:
        _stop_group(proc)
        llm.stop()
        trap.close()
        # Shown by pytest only when the test failed.
        print(f"--- langgraph dev log ({log}) ---")
        print(log.read_text(errors="replace")[-20_000:] if log.exists() else "<no log>")


async def _enduro(server: DevServer, *args: str) -> tuple[int, Any]:
    """Run the `enduro` CLI in its own process on the server's database.

    Returns its exit code and its --json (an object, or a list for `list`).
    """
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "enduro"),
        *args,
        "--db",
        server.db,
        "--json",
        env=server.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"`enduro {' '.join(args)}` did not finish in {CLI_TIMEOUT:.0f}s")
    assert out.strip(), f"`enduro {' '.join(args)}` printed no JSON; stderr:\n{err.decode()}"
    return int(proc.returncode or 0), json.loads(out)


def _as_dict(answer: object) -> dict[str, Any]:
    """An SDK answer typed as a union (a run's values may be a list) that must be a dict."""
    assert isinstance(answer, dict), answer
    return answer


def _plan(values: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(s["id"], s["title"], s["status"]) for s in values.get("plan") or []]


async def _read_cli_thread(client: Any, thread_id: str) -> dict[str, Any]:
    """A thread the CLI wrote exists only in enduro's saver; the in-memory runtime keeps
    its own thread registry, so the thread is registered (bound to graph `enduro`) first.
    The checkpoint itself is read through the saver of `checkpointer.path`."""
    await client.threads.create(thread_id=thread_id, if_exists="do_nothing", graph_id="enduro")
    state: dict[str, Any] = await client.threads.get_state(thread_id)
    return state


async def test_langgraph_dev_serves_enduro_on_its_own_saver(dev_server: DevServer) -> None:
    server, llm = dev_server, dev_server.llm
    client = get_client(url=server.url, api_key=None, timeout=RUN_TIMEOUT)

    # 1. The graph is served, and the per-run knobs are its context schema (Studio's form).
    assistants = await client.assistants.search(graph_id="enduro")
    assert [a["graph_id"] for a in assistants] == ["enduro"]
    assistant_id = assistants[0]["assistant_id"]
    schemas = await client.assistants.get_schemas(assistant_id)
    context_schema = schemas.get("context_schema") or {}
    assert context_schema.get("title") == "EnduroContext"
    fields = context_schema.get("properties") or {}
    for name in (
        "model",
        "max_usd",
        "max_minutes",
        "max_iterations",
        "max_llm_calls",
        "max_tool_calls",
        "workspace",
    ):
        assert name in fields, f"{name} missing from the context schema: {sorted(fields)}"
    # Studio's form shows each property's description as its help text: every knob has one.
    undescribed = sorted(k for k, v in fields.items() if not str(v.get("description", "")).strip())
    assert undescribed == [], f"context fields served without a description: {undescribed}"
    assert fields["max_usd"]["description"] == "Hard spend limit in US dollars."
    assert "goal" in (schemas.get("input_schema") or {}).get("properties", {})

    # 2. A run created on the dev server completes, tool calls included.
    thread = await client.threads.create(graph_id="enduro")
    thread_id = thread["thread_id"]
    started = time.monotonic()
    final = _as_dict(
        await asyncio.wait_for(
            client.runs.wait(
                thread_id, assistant_id, input={"goal": GOAL}, context={"max_iterations": 50}
            ),
            RUN_TIMEOUT,
        )
    )
    print(f"dev-server run took {time.monotonic() - started:.1f}s")
    assert final.get("status") == "completed", final
    assert final.get("stop_reason") is None
    assert len(final["plan"]) == 3
    assert all(step["status"] == "done" for step in final["plan"]), final["plan"]
    assert final.get("report")
    assert final["usage"]["tool_calls"] >= 3
    assert llm.count("plan") == 1
    # The file tools wrote into ENDURO_WORKSPACE, under the thread's own directory.
    assert sorted(p.name for p in (server.workspace / thread_id / "notes").iterdir()) == [
        "s1.md",
        "s2.md",
        "s3.md",
    ]
    # Its checkpoints are in enduro's database: the thread's state as the server reads it.
    served = await client.threads.get_state(thread_id)
    assert isinstance(served["values"], dict), served["values"]
    assert served["values"]["status"] == "completed"
    assert served["next"] == []
    # ...and the CLI sees the thread the dev server started ("and vice versa").
    code, listed = await _enduro(server, "list")
    assert code == 0 and thread_id in [t["thread_id"] for t in listed], listed
    _, dev_status = await _enduro(server, "status", thread_id)
    assert dev_status["status"] == "completed" and dev_status["report"] == final["report"]

    # 3. A thread started by the CLI, in another process, while the server runs.
    cli_thread = str(uuid.uuid4())  # the dev server only accepts UUID thread ids
    code, cli_status = await _enduro(
        server, "run", GOAL, "--thread-id", cli_thread, "--max-iterations", "50"
    )
    assert code == 0, cli_status
    assert cli_status["status"] == "completed"
    assert llm.count("plan") == 2

    state = await _read_cli_thread(client, cli_thread)
    values = state["values"]
    _, status = await _enduro(server, "status", cli_thread)
    assert values["goal"] == GOAL
    assert values["status"] == status["status"] == "completed"
    assert _plan(values) == [(s["id"], s["title"], s["status"]) for s in status["plan"]]
    assert all(st == "done" for _, _, st in _plan(values))
    assert values["report"] == status["report"]
    assert state["checkpoint"]["checkpoint_id"] == status["checkpoint_id"]
    assert state["next"] == []

    # 4. A CLI thread stopped by a limit is continued from the dev server: the run re-enters
    #    with the goal (as `enduro resume` does) and a raised limit, and keeps its plan.
    limited = str(uuid.uuid4())
    code, limited_status = await _enduro(
        server, "run", GOAL, "--thread-id", limited, "--max-iterations", "1"
    )
    assert code == 3, limited_status
    assert limited_status["stop_reason"] == "max_iterations"
    plans_before = llm.count("plan")
    state = await _read_cli_thread(client, limited)
    assert state["values"]["status"] == "budget_exhausted"
    assert _plan(state["values"]) == [
        (s["id"], s["title"], s["status"]) for s in limited_status["plan"]
    ]
    final = _as_dict(
        await asyncio.wait_for(
            client.runs.wait(
                limited, assistant_id, input={"goal": GOAL}, context={"max_iterations": 50}
            ),
            RUN_TIMEOUT,
        )
    )
    assert final["status"] == "completed", final
    assert all(step["status"] == "done" for step in final["plan"])
    assert llm.count("plan") == plans_before  # the plan was kept, not made again
    # ...and the CLI sees the continued checkpoint.
    _, status = await _enduro(server, "status", limited)
    assert [s["status"] for s in status["plan"]] == ["done", "done", "done"]
    assert status["report"] == final["report"]
    assert (status["status"], status["stop_reason"]) == ("completed", None)

    # 5. A CLI thread waiting for an approval shows its interrupt on the dev server (Studio),
    #    and `Command(resume={id: answer})` sent through the SDK continues it there.
    waiting = str(uuid.uuid4())
    code, waiting_status = await _enduro(
        server, "run", GOAL, "--thread-id", waiting, "--approve", "write_file"
    )
    assert code == 6, waiting_status
    [pending] = waiting_status["interrupts"]
    state = await _read_cli_thread(client, waiting)
    [shown] = state["interrupts"]
    assert shown["id"] == pending["id"]
    assert shown["value"]["kind"] == "approval" and shown["value"]["tool"] == "write_file"
    assert shown["value"]["args"] == pending["args"]
    # The run's knobs travel with each run on the Agent Server (the CLI keeps them in its
    # own table), so the approval requirement is given again here.
    context: dict[str, Any] = {"max_iterations": 50, "approve": ["write_file"]}
    answered = 0
    while state["interrupts"] and answered < 6:
        resume = {i["id"]: {"decision": "approve"} for i in state["interrupts"]}
        await asyncio.wait_for(
            client.runs.wait(waiting, assistant_id, command={"resume": resume}, context=context),
            RUN_TIMEOUT,
        )
        answered += 1
        state = _as_dict(await client.threads.get_state(waiting))
    assert answered == 3, "one approval per step's write"
    assert state["values"]["status"] == "completed" and state["next"] == []
    assert sorted(p.name for p in (server.workspace / waiting / "notes").iterdir()) == [
        "s1.md",
        "s2.md",
        "s3.md",
    ]
    _, status = await _enduro(server, "status", waiting)
    assert (status["status"], status["interrupts"]) == ("completed", [])

    # 6. A thread named on the CLI opens in the dev server, which accepts only UUIDs: the
    #    name maps to a stable UUID (the thread id), and every command takes the name.
    code, named = await _enduro(
        server, "run", GOAL, "--thread-id", "nightly-report-7", "--max-iterations", "50"
    )
    assert code == 0, named
    assert named["name"] == "nightly-report-7"
    assert named["thread_id"] == str(uuid.UUID(named["thread_id"]))
    state = await _read_cli_thread(client, named["thread_id"])
    assert state["values"]["status"] == "completed"
    _, by_name = await _enduro(server, "status", "nightly-report-7")
    assert by_name["thread_id"] == named["thread_id"]
    assert by_name["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]

    assert server.trap.hits == [], f"something tried to reach the internet: {server.trap.hits}"
