"""Budget flags: parsing, how they override a stored context, and fail-closed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from enduro.cli import _overrides, build_parser, main
from enduro.context import ContextOverrides, EnduroContext
from enduro.errors import ConfigError
from enduro.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OPENAI_API_KEY", "ENDURO_DATABASE_URL", "ENDURO_MODEL"):
        monkeypatch.delenv(name, raising=False)
    # An endpoint that is never reached: every case here stops before any call.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.chdir(tmp_path)


def _overrides_of(*argv: str) -> ContextOverrides:
    args = build_parser().parse_args(["resume", "t-1", *argv])
    return _overrides(args, Settings.from_env())


def test_unknown_price_with_max_usd_is_refused_before_anything_is_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "a goal", "--model", "llama-local", "--max-usd", "2"]) == 2
    err = capsys.readouterr().err
    assert "no known price for model 'llama-local'" in err
    assert "--price-input" in err and "--free-model" in err
    assert not Path(".enduro").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--free-model", "--price-input", "1"], "--free-model and --price-* contradict"),
        (["--max-usd", "1", "--final-reserve-usd", "1"], "final reserve $1.0 must be"),
        (["--model", "x-local", "--max-usd", "1", "--price-input", "1"], "missing output"),
    ],
)
def test_inconsistent_budget_flags_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "g", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not Path(".enduro").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--deadline", "tomorrow"],
        ["--max-tokens", "0"],
        ["--price-input", "-0.5"],
        ["--clear-limit", "max_everything"],
    ],
)
def test_bad_budget_values_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["run", "g", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and argv[1] in err


def test_flags_become_context_overrides() -> None:
    out = _overrides_of(
        "--max-usd",
        "5",
        "--max-tokens",
        "100000",
        "--deadline",
        "2030-01-01T00:00Z",
        "--price-input",
        "0.5",
        "--price-output",
        "1.5",
        "--final-reserve-usd",
        "0.2",
        "--clear-limit",
        "max_minutes",
    )
    assert out == ContextOverrides(
        max_usd=5.0,
        max_tokens=100000,
        deadline="2030-01-01T00:00:00+00:00",
        final_reserve_usd=0.2,
        prices={"": {"input": 0.5, "output": 1.5}},
        unset=("max_minutes",),
    )
    assert _overrides_of("--free-model").prices == {
        "": {"input": 0.0, "output": 0.0, "cached_input": 0.0}
    }


def test_resume_overrides_change_one_limit_and_keep_the_rest() -> None:
    stored = EnduroContext(
        model="m1",
        max_usd=1.0,
        max_minutes=30,
        max_tool_calls=7,
        prices={"m1": {"input": 1.0, "output": 2.0}, "m0": {"input": 0, "output": 0}},
    )
    raised = stored.with_overrides(_overrides_of("--max-usd", "5"))
    assert (raised.max_usd, raised.max_minutes, raised.max_tool_calls) == (5.0, 30, 7)
    cleared = stored.with_overrides(_overrides_of("--clear-limit", "max_minutes"))
    assert cleared.max_minutes is None and cleared.max_usd == 1.0
    repriced = stored.with_overrides(_overrides_of("--price-output", "3"))
    assert repriced.prices["m1"] == {"input": 1.0, "output": 3.0}, "merged per model"
    moved = stored.with_overrides(_overrides_of("--model", "m2", "--free-model"))
    assert moved.prices["m2"]["input"] == 0 and moved.prices["m1"]["output"] == 2.0
    assert EnduroContext.from_dict(raised.to_dict()) == raised, "round-trips as stored JSON"


def test_run_options_are_typed_and_check_what_they_are_given() -> None:
    from enduro.runner import RunFields, RunOptions

    assert set(RunFields.__annotations__) == set(RunOptions.__dataclass_fields__)
    base = RunOptions(keep_checkpoints=5)
    merged = RunOptions.of(base, {"overrides": ContextOverrides(max_usd=2.0)})
    assert (merged.keep_checkpoints, merged.overrides.max_usd) == (5, 2.0)
    assert RunOptions.of(base, {}) is base
    # The dict API of earlier versions still works, checked field by field.
    legacy = RunOptions(overrides={"max_iterations": 4, "unset": ["max_usd"]})  # type: ignore[arg-type]
    assert legacy.overrides == ContextOverrides(max_iterations=4, unset=("max_usd",))
    with pytest.raises(ConfigError, match=r"unknown context overrides \['max_dollars'\]"):
        RunOptions(overrides={"max_dollars": 1})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"cannot unset \['model'\]"):
        ContextOverrides(unset=("model",))
    with pytest.raises(ConfigError, match="keep_checkpoints=0"):
        RunOptions(keep_checkpoints=0)
