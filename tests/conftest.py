"""Shared fixtures: a scripted model server, and a fresh database per test on both engines.

PostgreSQL comes from ENDURO_TEST_DATABASE_URL or postgresql://postgres@127.0.0.1:5432/test
(scripts/test.sh starts a throwaway server when neither answers). Postgres tests are never
skipped: when no server answers, they fail with a message that says how to provide one.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakellm import ScriptedLLM

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    return os.environ.get("ENDURO_TEST_DATABASE_URL") or DEFAULT_PG


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = pg_base_url()
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {url} ({exc}). Postgres tests are never skipped: "
            "run the suite with `bash scripts/test.sh` (it starts a throwaway server when none "
            "answers) or set ENDURO_TEST_DATABASE_URL.",
            pytrace=False,
        )
    return url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A URL whose search_path is a schema of this test's own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_admin_url else "?"
    yield f"{pg_admin_url}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every storage test runs on both engines."""
    if request.param == "sqlite":
        return str(tmp_path / "enduro.sqlite")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def llm_env(llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ScriptedLLM:
    """Env pointing enduro at the scripted server, with nothing leaking in from the shell."""
    for name in (
        "OPENAI_API_KEY",
        "ENDURO_DATABASE_URL",
        "ENDURO_WEBHOOK_URL",
        "ENDURO_WEBHOOK_SECRET",
        "ENDURO_MODEL",
        "LANGSMITH_TRACING",
        "LANGCHAIN_TRACING_V2",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", llm.base_url)
    monkeypatch.setenv("ENDURO_WORKSPACE", str(tmp_path / "workspaces"))
    return llm
