"""MCP tools through `--mcp-config`: a server written with the official `mcp` package, over
stdio and over streamable HTTP, including one that dies mid-run, and one that never starts.
Real subprocesses (the CLI and the servers) against the scripted model server."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clikit import ENDURO, cli_env
from clikit import run_cli as _run_cli
from fakellm import ScriptedLLM


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # Generous: each call starts a Python process, and CI machines can be loaded.
    return _run_cli(args, env, timeout=300)


SERVER = str(Path(__file__).parent.parent / "mcpserver.py")


def _config(tmp_path: Path, servers: dict[str, Any]) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return str(path)


def _texts(llm: ScriptedLLM) -> list[str]:
    out = []
    for message in llm.tool_results("s1"):
        content = message["content"]
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content)
        out.append(str(content))
    return out


def test_stdio_server_tools_approval_and_a_server_that_dies_mid_run(
    db_url: str, tmp_path: Path
) -> None:
    effects = tmp_path / "effects.txt"
    config = _config(
        tmp_path,
        {
            "calc": {
                "command": sys.executable,
                "args": [SERVER, "stdio"],
                "env": {"MCP_EFFECTS": "${TEST_MCP_EFFECTS}"},
                "tools": {"record": {"approve": True, "sideEffect": "retry"}},
            }
        },
    )
    script: dict[str, list[list[tuple[str, dict[str, Any]]]]] = {
        "s1": [
            [("calc__add", {"a": 2, "b": 3})],
            [("calc__crash", {})],  # the server process exits in the middle of the call
            [("calc__record", {"note": "shipped"})],
        ]
    }
    with ScriptedLLM(steps=["Compute"], act_script=script) as llm:
        env = cli_env(llm, tmp_path, TEST_MCP_EFFECTS=str(effects))
        tid = str(uuid.uuid4())
        args = ["--db", db_url, "--json"]
        done = run_cli(["run", "g", "--thread-id", tid, "--mcp-config", config, *args], env)
        assert done.returncode == 6, done.stderr
        [item] = json.loads(done.stdout)["interrupts"]
        assert (item["tool"], item["args"]) == ("calc__record", {"note": "shipped"})
        assert not effects.exists()
        # The thread keeps the file's path and hash, never the resolved ${VAR}: a resume
        # loads the file again, from this environment.
        # The file changes while the thread waits: the resume loads it as it is now, and
        # says so.
        Path(config).write_text(json.dumps(json.loads(Path(config).read_text()), indent=2))
        approved = run_cli(["approve", tid, *args], env)
        assert approved.returncode == 0, approved.stderr
        assert "changed since the run last loaded it" in approved.stderr
        assert json.loads(approved.stdout)["status"] == "completed"
        results = _texts(llm)
        assert results[0] == "5"
        assert "Error" in results[1], "a server that died is a tool error the model sees"
        assert results[2].startswith("recorded"), "the next call starts the server again"
        assert effects.read_text() == "shipped\n"
        if not db_url.startswith("postgresql"):
            assert str(effects).encode() not in Path(db_url).read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield proc, port
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_streamable_http_server_and_its_death_mid_run(
    http_server: tuple[subprocess.Popen[bytes], int], tmp_path: Path
) -> None:
    proc, port = http_server
    config = _config(
        tmp_path,
        {"web": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"X-Test": "${TEST_HDR}"}}},
    )
    script = {"s1": [[("web__add", {"a": 20, "b": 22})], [("web__add", {"a": 1, "b": 1})]]}
    with ScriptedLLM(steps=["Compute"], act_script=script, latency=0.0) as llm:
        env = cli_env(llm, tmp_path, TEST_HDR="yes")
        db = str(tmp_path / "e.sqlite")
        run = subprocess.Popen(
            [ENDURO, "run", "g", "--db", db, "--json", "--mcp-config", config],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            # After the first answer reached the model, the server dies.
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not _texts(llm):
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            out, err = run.communicate(timeout=120)
        finally:
            run.kill()
        assert run.returncode == 0, err
        assert json.loads(out)["status"] == "completed"
        results = _texts(llm)
        assert results[0] == "42"
        assert results[1].startswith("Error"), results


def test_a_server_that_fails_to_start_is_exit_2_naming_it(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        {
            "ok": {"command": sys.executable, "args": [SERVER, "stdio"]},
            "broken": {"command": str(tmp_path / "no-such-server")},
        },
    )
    with ScriptedLLM() as llm:
        env = cli_env(llm, tmp_path)
        db = str(tmp_path / "e.sqlite")
        done = run_cli(["run", "g", "--db", db, "--mcp-config", config], env)
        assert done.returncode == 2, done.stderr
        assert "MCP server 'broken' failed to start" in done.stderr
        assert "Traceback" not in done.stderr
        assert llm.count() == 0
        unset = _config(tmp_path, {"x": {"url": "http://127.0.0.1:1/mcp?k=${NOPE_VAR}"}})
        done = run_cli(["run", "g", "--db", db, "--mcp-config", unset], env)
        assert done.returncode == 2 and "${NOPE_VAR} is not set" in done.stderr
