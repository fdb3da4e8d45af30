"""Terminal progress: a live line on a TTY (rich), plain lines otherwise, nothing with --quiet."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.status import Status

from enduro.records import FINISHED_STEP_STATUSES


class Progress:
    """The live progress line of `enduro run` / `resume` on stderr (a TTY only).

    Shows the step count, the current step, elapsed seconds, model calls and dollars spent;
    fed with each super-step's updates. `quiet` silences it and `say`.
    """

    def __init__(self, *, quiet: bool = False, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.tty = self.console.is_terminal
        self.started = time.monotonic()
        self.plan: list[dict[str, Any]] = []
        self.current: str | None = None
        self.usage: dict[str, float] = {}
        self._status: Status | None = None

    def __enter__(self) -> Progress:
        if not self.quiet and self.tty:
            self._status = self.console.status(self._line())
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()

    def say(self, text: str) -> None:
        """A line for the human, on stderr, unless --quiet."""
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def _line(self) -> str:
        done = sum(1 for s in self.plan if s["status"] in FINISHED_STEP_STATUSES)
        title = next((s["title"] for s in self.plan if s["id"] == self.current), "planning")
        elapsed = time.monotonic() - self.started
        usd = self.usage.get("usd")
        spend = f" · ${usd:.4f}" if usd else ""
        return (
            f"[{done}/{len(self.plan)}] {title} · {elapsed:,.0f}s · "
            f"{int(self.usage.get('llm_calls', 0))} model calls{spend}"
        )

    def update(self, chunk: dict[str, Any]) -> None:
        """Called with each super-step's node updates (stream_mode="updates")."""
        for node, update in chunk.items():
            if not isinstance(update, dict):
                continue
            for key, value in (update.get("usage") or {}).items():
                self.usage[key] = self.usage.get(key, 0) + value
            spent = ((update.get("budget") or {}).get("max_usd") or {}).get("used")
            if spent is not None:
                # The guard's view of the ledger; the state's counters hold no dollars.
                self.usage["usd"] = float(spent)
            before = {s["id"]: s["status"] for s in self.plan}
            if "plan" in update:
                self.plan = update["plan"]
            if "current" in update:
                self.current = update["current"]
            if node == "plan" and "plan" in update and not self.tty:
                self.say(f"plan: {len(self.plan)} steps")
            for step in self.plan:
                if (
                    step["status"] in ("done", "failed")
                    and before.get(step["id"]) != step["status"]
                ):
                    self.say(f"step {step['id']} {step['status']}: {step['title']}")
            if node == "finish":
                self.say(f"finished: {update.get('status')}")
        if self._status is not None:
            self._status.update(self._line())
