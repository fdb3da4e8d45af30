"""The read-only paths import neither LangGraph's graph modules nor langchain-openai, and
`enduro`'s public API loads lazily (tests/integration/test_client.py checks the same rule
on real commands against a real thread)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FORBIDDEN = ("langgraph.graph", "langgraph.pregel", "langchain_openai")


def _imported(code: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}


def _forbidden(names: set[str]) -> list[str]:
    return sorted(n for n in names if n.startswith(FORBIDDEN))


def test_importing_the_cli_and_the_client_stays_light() -> None:
    names = _imported(
        "import enduro, enduro.cli, enduro.client, enduro.errors\n"
        "enduro.Client, enduro.ThreadStatus, enduro.errors.StopReason\n"
        "enduro.cli.build_parser().parse_args(['status', 'x'])"
    )
    assert "enduro.client" in names and "enduro.cli" in names
    assert _forbidden(names) == []


def test_the_public_api_still_loads_on_use() -> None:
    names = _imported("from enduro import build_graph, default_tools, advance_thread")
    assert "langgraph.graph" in names, "a real import, not a stub"


def test_a_status_command_imports_nothing_heavy(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite"
    argv = [sys.executable, "-X", "importtime", "-m", "enduro.cli", "status", "x"]
    done = subprocess.run(
        [*argv, "--db", str(missing), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and '"error"' in done.stdout
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "enduro.client" in names
    assert _forbidden(names) == []


def test_public_names() -> None:
    import enduro

    for name in enduro.__all__:
        assert getattr(enduro, name) is not None, name
    assert enduro.errors.EnduroError is enduro.EnduroError
