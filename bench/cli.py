"""CLI speed bench: how long the read-only commands take, as a ratio of the time Python
needs to import the two database drivers (`python -c "import psycopg, aiosqlite"`),
measured in one run so that the machine's load affects both sides alike.

    .venv/bin/python bench/cli.py              # 7 runs per command, SQLite
    .venv/bin/python bench/cli.py --runs 15 --database-url postgresql://postgres@127.0.0.1/test

It first makes one completed thread with `enduro run` against the test suite's scripted
OpenAI-compatible server (tests/fakellm.py), then times `status`, `list`, `report`,
`cancel` (of the completed thread: it answers "already completed") and `webhooks list`,
each a fresh `python -m enduro.cli … --json` process, wall time from spawn to exit. The
figure per command is the median of its runs; the target is a ratio of at most 3.
Also reported: whether any of those processes imported LangGraph's graph modules or
langchain-openai (`-X importtime`), which they must not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakellm import ScriptedLLM

FORBIDDEN = ("langgraph.graph", "langgraph.pregel", "langchain_openai")
TARGET = 3.0


def _env(llm: ScriptedLLM, workdir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ENDURO_", "LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(OPENAI_BASE_URL=llm.base_url, ENDURO_WORKSPACE=str(workdir / "ws"))
    return env


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


def _forbidden_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    return sorted(n for n in names if n.startswith(FORBIDDEN))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per command (median)")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ScriptedLLM(steps=["One", "Two"]) as llm:
        workdir = Path(tmp)
        env = _env(llm, workdir)
        db = args.database_url or str(workdir / "bench.sqlite")
        tid = str(uuid.uuid4())
        cli = [sys.executable, "-m", "enduro.cli"]
        _timed([*cli, "run", "Bench the CLI", "--thread-id", tid, "--db", db, "-q"], env)
        commands = {
            "status": ["status", tid],
            "list": ["list"],
            "report": ["report", tid],
            "cancel": ["cancel", tid],
            "webhooks list": ["webhooks", "list"],
        }
        baseline_argv = [sys.executable, "-c", "import psycopg, aiosqlite"]
        samples: dict[str, list[float]] = {"baseline": []}
        samples.update({name: [] for name in commands})
        # Interleaved, so that a burst of load elsewhere hits every command alike.
        for _ in range(args.runs):
            samples["baseline"].append(_timed(baseline_argv, env))
            for name, rest in commands.items():
                samples[name].append(_timed([*cli, *rest, "--db", db, "--json"], env))
        base = statistics.median(samples["baseline"])
        print(f"baseline  python -c 'import psycopg, aiosqlite'  {base * 1000:7.0f} ms")
        print(f"{'command':<15} {'median ms':>10} {'ratio':>7}  forbidden imports")
        worst = 0.0
        for name, rest in commands.items():
            median = statistics.median(samples[name])
            ratio = median / base
            worst = max(worst, ratio)
            bad = _forbidden_imports([*cli, *rest, "--db", db, "--json"], env)
            print(f"{name:<15} {median * 1000:10.0f} {ratio:7.2f}  {', '.join(bad) or 'none'}")
        verdict = "within" if worst <= TARGET else "OVER"
        print(f"worst ratio {worst:.2f} ({verdict} the target of {TARGET:g}x)")


if __name__ == "__main__":
    main()
