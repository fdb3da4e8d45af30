"""Actions that continue a thread: resume with raised limits, approve / reject / answer.

Each runs the CLI's own command (`enduro resume`, `enduro approve`, …) in a process of its
own, started from the dashboard's environment (its model endpoint and key) with the database
URL passed through the environment, never on a command line that `ps` shows. The run
outlives the request and even the dashboard (its own session); while the dashboard lives, a
task reaps it. Queueing (`--detach`, workers) belongs here once it exists.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from enduro._redact import redact
from enduro.dashboard import source
from enduro.errors import EnduroError
from enduro.hitl.cli import choose
from enduro.hitl.waiting import thread_interrupts
from enduro.settings import Settings
from enduro.storage import Backend

# A command refused at once (no model endpoint, an unknown interrupt id) is reported to the
# caller; one still running after this long is taken to have started.
EARLY_EXIT_SECONDS = 1.5
FLAGS = ("max_usd", "max_minutes", "max_iterations", "max_llm_calls", "max_tool_calls")


@dataclass
class Runs:
    """Resume processes this dashboard started, reaped as they end."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)


async def resume(runs: Runs, backend: Backend, thread_id: str, limits: dict[str, Any]) -> int:
    """Start `enduro resume THREAD_ID` with `limits` (keys of FLAGS); returns its pid.

    Raises source.NotFound, or source.Conflict when the thread is running, waiting or
    completed, or when the process exits at once (its message, secrets masked).
    """
    status = await source.thread(backend, thread_id)
    if status["status"] in ("running", "completed", "waiting"):
        raise source.Conflict(f"thread {thread_id} is {status['status']}: nothing to resume")
    args = ["resume", thread_id]
    for key in FLAGS:
        if limits.get(key) is not None:
            args += ["--" + key.replace("_", "-"), str(limits[key])]
    return await _start(runs, backend, thread_id, args)


async def respond(
    runs: Runs,
    backend: Backend,
    thread_id: str,
    command: str,
    interrupt_id: str | None,
    text: str | None = None,
) -> int:
    """Start `enduro approve|reject|answer THREAD_ID [--id ID]`; returns its pid.

    `text` is the reject reason or the answer. Raises as `resume`, and `Conflict` when the thread
    does not wait or when the CLI refuses (an unknown id, several pending and no id, the wrong
    kind), with its message.
    """
    status = await source.thread(backend, thread_id)
    if status["status"] != "waiting":
        raise source.Conflict(f"thread {thread_id} is {status['status']}: nothing to answer")
    try:
        # The CLI's own check, here so that its refusal is the answer to this request.
        choose(thread_id, await thread_interrupts(backend, thread_id), interrupt_id, command)
    except EnduroError as exc:
        raise source.Conflict(str(exc)) from exc
    args = [command, thread_id]
    if interrupt_id:
        args += ["--id", interrupt_id]
    if command == "reject" and text:
        args += ["--reason", text]
    if command == "answer":
        args += ["--", text or ""]  # `--`: an answer that starts with "-" is not a flag
    return await _start(runs, backend, thread_id, args)


async def _start(runs: Runs, backend: Backend, thread_id: str, args: list[str]) -> int:
    try:
        Settings.from_env().require_model_endpoint()
    except EnduroError as exc:
        raise source.Conflict(f"the dashboard cannot continue runs: {exc}") from exc
    argv = [sys.executable, "-m", "enduro.cli", *args[:2], "--json", *args[2:]]
    env = {**os.environ, "ENDURO_DATABASE_URL": backend.url}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C of the dashboard does not stop the run
    )
    tail: list[bytes] = []
    task = asyncio.create_task(_reap(proc, tail))
    runs.tasks.add(task)
    runs.processes[thread_id] = proc
    task.add_done_callback(runs.tasks.discard)
    done, _ = await asyncio.wait({task}, timeout=EARLY_EXIT_SECONDS)
    # Exit 2 is a refusal (usage or configuration); any other code is the run's outcome
    # (it may finish, or wait again, within the moment).
    if done and proc.returncode == 2:
        lines = b"".join(tail).decode(errors="replace").strip().splitlines()
        last = redact(lines[-1] if lines else "", 500)
        raise source.Conflict(f"enduro {args[0]} refused: {last}")
    return proc.pid


async def _reap(proc: asyncio.subprocess.Process, tail: list[bytes]) -> None:
    assert proc.stderr is not None
    async for line in proc.stderr:
        tail.append(line)
        del tail[:-20]
    await proc.wait()
