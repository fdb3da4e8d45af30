"""The dashboard as users start it: `enduro dashboard` in a subprocess on a free port.

`Dashboard` starts it, reads the URL it prints, and stops it (and reaps it) on exit, even
when the test fails. `seed` writes thread rows straight into the database, for tests about
lists rather than runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from clikit import ENDURO
from enduro import threads
from enduro.context import EnduroContext
from enduro.storage import open_backend

ARTIFACTS = Path(os.environ.get("ENDURO_ARTIFACTS") or Path(__file__).parents[1] / ".artifacts")
_URL = re.compile(r"enduro dashboard on (http://\S+/)")


class Dashboard:
    """A running `enduro dashboard`; `.url` ends with a slash, `.stderr` is what it said."""

    def __init__(self, db: str, env: dict[str, str], *args: str) -> None:
        self.argv = [ENDURO, "dashboard", "--db", db, "--port", "0", *args]
        self.env = env
        self.lines: list[str] = []
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def __enter__(self) -> Dashboard:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        found = threading.Event()

        def drain() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line)
                match = _URL.search(line)
                if match:
                    self.url = match.group(1)
                    found.set()
            found.set()

        threading.Thread(target=drain, daemon=True).start()
        found.wait(60)
        if not self.url:
            self.__exit__()
            raise AssertionError(f"the dashboard did not start: {self.stderr}")
        # The URL is printed once the socket listens; wait until the app answers too.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "static/app.css", timeout=2)
                return self
            time.sleep(0.1)
        self.__exit__()
        raise AssertionError(f"the dashboard does not answer: {self.stderr}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def run_dashboard(db: str, env: dict[str, str], *args: str, timeout: float = 60) -> Any:
    """`enduro dashboard` expected to refuse to start: its completed process."""
    return subprocess.run(
        [ENDURO, "dashboard", "--db", db, "--port", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def seed(
    db: str, count: int, *, status: str = "paused", goal: str = "Seeded goal"
) -> list[str]:
    """`count` thread rows (no checkpoints), created in order; returns their ids."""
    ids = []
    async with open_backend(db) as backend:
        for n in range(count):
            tid = f"seed-{uuid.uuid4().hex[:10]}"
            await threads.create_thread(backend.db, tid, f"{goal} {n}", EnduroContext())
            if status != "paused":
                await threads.release(backend.db, tid, status, None)
            ids.append(tid)
    return ids


def artifact(name: str) -> Path:
    """A path under the test artifact directory (.artifacts/dashboard/), printed so that a
    CI log says where the screenshot is."""
    path = ARTIFACTS / "dashboard" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"artifact: {path}")
    return path


def seed_sync(db: str, count: int, **kwargs: Any) -> list[str]:
    """`seed` from a thread of its own: callable where a loop is running (Playwright's)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, seed(db, count, **kwargs)).result()
