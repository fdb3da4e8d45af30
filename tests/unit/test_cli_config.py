"""Bad input is a clear error with exit code 2, before anything is touched."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from enduro.cli import main
from enduro.context import EnduroContext
from enduro.storage.leases import owner_alive, this_owner
from enduro.threads import ThreadRow


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ENDURO_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_no_endpoint_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "a goal"]) == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "OPENAI_BASE_URL" in err
    assert not Path(".enduro").exists(), "a refused run must not create a database"


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "g", "--max-iterations", "zero"],
        ["run", "g", "--max-usd", "-1"],
        ["run", "g", "--max-usd", "nan"],
        ["run", "g", "--max-minutes", "inf"],
        ["resume"],
        ["frobnicate"],
        ["run", "g", "--no-such-flag"],
    ],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_status_without_database_says_where_it_looked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "t-nope"]) == 2
    assert "no enduro database at .enduro/enduro.sqlite" in capsys.readouterr().err


def test_unsupported_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--db", "mysql://root:hunter2@db/x"]) == 2
    err = capsys.readouterr().err
    assert "unsupported database URL" in err and "hunter2" not in err


def _row(owner: str | None, heartbeat: float | None, status: str = "running") -> ThreadRow:
    return ThreadRow("t", "g", status, None, EnduroContext(), 0.0, 0.0, owner, heartbeat, False, 1)


def test_dead_owner_shows_as_paused_crashed() -> None:
    now = time.time()
    assert _row(this_owner(), now).effective_status() == ("running", None)
    dead = f"{this_owner().rpartition(':')[0]}:{2**22 + 12345}"
    assert not owner_alive(dead, now)
    assert _row(dead, now).effective_status() == ("paused", "crashed")
    assert _row("otherhost:1", now - 3600).effective_status() == ("paused", "crashed")
    assert _row("otherhost:1", now).effective_status() == ("running", None)
    assert _row(None, None, "completed").effective_status() == ("completed", None)
