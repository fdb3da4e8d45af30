"""Terminal progress without a TTY, and the config every segment of a thread runs with."""

from __future__ import annotations

import io

from rich.console import Console

from enduro.progress import Progress
from enduro.runner import run_config


def _plan(*statuses: str) -> list[dict[str, str]]:
    return [
        {"id": f"s{i + 1}", "title": f"Step {i + 1}", "status": s} for i, s in enumerate(statuses)
    ]


def test_plain_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    progress = Progress(console=Console(file=out, force_terminal=False))
    with progress:
        progress.update({"plan": {"plan": _plan("active", "pending"), "current": "s1"}})
        progress.update(
            {
                "reflect": {
                    "plan": _plan("done", "active"),
                    "current": "s2",
                    "usage": {"llm_calls": 1},
                }
            }
        )
        progress.update({"finish": {"status": "completed"}})
    assert out.getvalue().splitlines() == [
        "plan: 2 steps",
        "step s1 done: Step 1",
        "finished: completed",
    ]


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = Progress(quiet=True, console=Console(file=out, force_terminal=False))
    with progress:
        progress.update({"plan": {"plan": _plan("active")}})
        progress.say("hello")
    assert out.getvalue() == ""


def test_tty_line_shows_step_counts_and_calls() -> None:
    progress = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    progress.update(
        {
            "reflect": {
                "plan": _plan("done", "active", "pending"),
                "current": "s2",
                "usage": {"llm_calls": 3},
            }
        }
    )
    line = progress._line()
    assert line.startswith("[1/3] Step 2 · ") and "3 model calls" in line


def test_every_segment_is_tagged_with_the_thread_id() -> None:
    # LangSmith groups the runs of a multi-hour thread by these.
    config = run_config("abc", 3)
    assert config["configurable"] == {"thread_id": "abc"}
    assert "thread:abc" in config["tags"]
    assert config["metadata"] == {"thread_id": "abc", "enduro_segment": 3}
    assert config["recursion_limit"] >= 1_000_000


def test_tty_line_shows_spend_from_the_guards_ledger_view() -> None:
    progress = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    progress.update({"guard": {"budget": {"max_usd": {"limit": 2.0, "used": 0.1234}}}})
    assert "$0.1234" in progress._line()
