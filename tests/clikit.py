"""Running the `enduro` console script as users do: a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakellm import ScriptedLLM

ENDURO = str(Path(sys.executable).parent / "enduro")


def cli_env(llm: ScriptedLLM, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The shell's environment without anything enduro, OpenAI or LangSmith reads, pointed
    at the scripted model and a workspace of the test's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "ENDURO_", "LANGSMITH_", "LANGCHAIN_"))
    }
    env.update(OPENAI_BASE_URL=llm.base_url, ENDURO_WORKSPACE=str(tmp_path / "ws"), **extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENDURO, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
