"""Actions that start work: resume a thread with raised limits.

A resume runs as `enduro resume` in a process of its own, started from the dashboard's
environment (its model endpoint and key) with the database URL passed through the
environment, never on a command line that `ps` shows. The run outlives the request and
even the dashboard (its own session); while the dashboard lives, a task reaps it.
The approve / reject / answer actions and queueing (`--detach`) belong here once they exist.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from enduro._redact import redact
from enduro.dashboard import source
from enduro.storage import Backend

# A resume that fails at once (no model endpoint, bad limits) is reported to the caller;
# one that is still running after this long is taken to have started.
EARLY_EXIT_SECONDS = 1.5
FLAGS = ("max_usd", "max_minutes", "max_iterations", "max_llm_calls", "max_tool_calls")


@dataclass
class Runs:
    """Resume processes this dashboard started, reaped as they end."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)


async def resume(runs: Runs, backend: Backend, thread_id: str, limits: dict[str, Any]) -> int:
    """Start `enduro resume THREAD_ID` with `limits` (keys of FLAGS); returns its pid.

    Raises source.NotFound, or source.Conflict when the thread is running or completed, or
    when the process exits at once (its message, secrets masked, is the error)."""
    status = await source.thread(backend, thread_id)
    if status["status"] in ("running", "completed"):
        raise source.Conflict(f"thread {thread_id} is {status['status']}: nothing to resume")
    argv = [sys.executable, "-m", "enduro.cli", "resume", thread_id, "--json"]
    for key in FLAGS:
        if limits.get(key) is not None:
            argv += ["--" + key.replace("_", "-"), str(limits[key])]
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
    if done and proc.returncode not in (0, None):
        lines = b"".join(tail).decode(errors="replace").strip().splitlines()
        last = redact(lines[-1] if lines else "", 500)
        raise source.Conflict(f"enduro resume exited with {proc.returncode}: {last}")
    return proc.pid


async def _reap(proc: asyncio.subprocess.Process, tail: list[bytes]) -> None:
    assert proc.stderr is not None
    async for line in proc.stderr:
        tail.append(line)
        del tail[:-20]
    await proc.wait()
