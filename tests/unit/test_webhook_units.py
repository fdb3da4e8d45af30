"""Webhook building blocks without a database: configuration, retry schedule, signing,
redaction and the event schema."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from enduro._redact import redact
from enduro._retry_after import parse_retry_after
from enduro.context import EnduroContext
from enduro.errors import ConfigError
from enduro.events import ThreadSnapshot, thread_snapshot, warning_info
from enduro.settings import Settings
from enduro.webhooks.config import (
    WebhookConfig,
    endpoint_id,
    fingerprint,
    new_secret,
    secret_bytes,
    validate_url,
)
from enduro.webhooks.events import MAX_ERROR_CHARS, eta_seconds, render_body, snapshot
from enduro.webhooks.retry import DEFAULT_SCHEDULE, RetryPolicy
from enduro.webhooks.signing import Signer, delivery_headers

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "webhook-event.schema.json").read_text())


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("notaurl", "scheme"),
        ("ftp://example.com/x", "'ftp'"),
        ("http://", "no host"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com:99999/", "malformed"),
        ("https://example.com/hook#part", "fragment"),
        ("", "empty"),
    ],
)
def test_bad_urls_name_the_value_and_the_fix(url: str, needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_url(url)
    text = str(exc.value)
    assert needle in text and "https://" in text


def test_good_urls_pass() -> None:
    for url in ("http://127.0.0.1:8080/hooks", "https://hooks.example.com/in?token=x"):
        assert validate_url(url) == url


def test_secrets_are_checked_without_echoing_them() -> None:
    raw = base64.b64encode(b"k" * 32).decode()
    with pytest.raises(ConfigError, match="must start with 'whsec_'") as exc:
        secret_bytes(raw)
    assert raw not in str(exc.value)
    with pytest.raises(ConfigError, match="not valid base64"):
        secret_bytes("whsec_not*base64!")
    with pytest.raises(ConfigError, match="decodes to 8 bytes"):
        secret_bytes("whsec_" + base64.b64encode(b"12345678").decode())
    good = new_secret()
    assert len(secret_bytes(good)) == 32
    assert good not in repr(WebhookConfig(secret=good))


def test_fingerprint_is_stable_and_reveals_nothing() -> None:
    a, b = new_secret(), new_secret()
    assert fingerprint(a) == fingerprint(a) != fingerprint(b)
    assert a.removeprefix("whsec_")[:8] not in fingerprint(a)


def test_env_urls_are_comma_separated_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENDURO_WEBHOOK_URL", "https://a.example/x, https://b.example/y")
    monkeypatch.delenv("ENDURO_WEBHOOK_SECRET", raising=False)
    monkeypatch.delenv("ENDURO_WEBHOOK_HEARTBEAT_SECONDS", raising=False)
    assert WebhookConfig.from_env().urls == ("https://a.example/x", "https://b.example/y")
    flags = Settings.from_env(webhook_urls=("https://c.example/z",))
    assert WebhookConfig.from_settings(flags).urls == ("https://c.example/z",)
    monkeypatch.setenv("ENDURO_WEBHOOK_URL", "https://a.example/x,ftp://b.example/y")
    with pytest.raises(ConfigError, match=r"ftp://b\.example/y"):
        WebhookConfig.from_env()
    monkeypatch.setenv("ENDURO_WEBHOOK_URL", "https://a.example/x")
    monkeypatch.setenv("ENDURO_WEBHOOK_HEARTBEAT_SECONDS", "soon")
    with pytest.raises(ConfigError, match=r"ENDURO_WEBHOOK_HEARTBEAT_SECONDS='soon'"):
        WebhookConfig.from_env()


def test_redaction_of_urls_and_error_text() -> None:
    assert redact("https://u:pw@h.example/p?token=abc") == "https://***@h.example/p?…"
    assert endpoint_id("https://a/x") == endpoint_id("https://a/x") != endpoint_id("https://a/y")
    secret = new_secret()
    text = (
        f"boom {secret} Authorization: Bearer abc.def sk-proj-123456789 "
        "https://user:pw@host/x?token=zzz&x=1"
    )
    clean = redact(text, MAX_ERROR_CHARS)
    for leaked in (secret, "abc.def", "sk-proj-123456789", "pw@", "zzz"):
        assert leaked not in clean
    assert redact("x" * 900, limit=500) == "x" * 499 + "…"


def test_retry_schedule_backs_off_with_bounded_jitter() -> None:
    policy = RetryPolicy(rng=random.Random(7))
    delays = [policy.delay(n) for n in range(1, policy.max_attempts)]
    for got, base in zip(delays, DEFAULT_SCHEDULE, strict=True):
        assert base * 0.8 <= got <= base * 1.2
    assert DEFAULT_SCHEDULE[:6] == (5, 20, 80, 320, 1280, 5120)
    assert policy.max_attempts == 11 and 25 * 3600 < policy.max_age < 27 * 3600
    assert not policy.is_dead(10, 60) and policy.is_dead(11, 60)
    # Old events get one attempt, not a whole schedule each.
    assert policy.is_dead(1, policy.max_age + 1)
    assert policy.delay(3, retry_after=7) == 7
    assert policy.delay(1, retry_after=10**9) == 3600


def test_retry_after_forms() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after("12") == 12
    assert parse_retry_after(later, now) == pytest.approx(90)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_headers_are_standard_webhooks_and_verify() -> None:
    secret = new_secret()
    body = '{"type":"run.started","timestamp":"x","data":{}}'
    at = datetime.now(UTC)
    headers = delivery_headers("evt_1", body, Signer(secret), at)
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    assert "webhook-signature" not in delivery_headers("evt_1", body, None)
    assert secret not in repr(Signer(secret))


def test_warning_codes() -> None:
    assert warning_info("max_usd:80") == {"code": "max_usd:80", "limit": "max_usd", "percent": 80}
    assert warning_info("deadline:soon") == {
        "code": "deadline:soon",
        "limit": None,
        "percent": None,
    }


def test_eta() -> None:
    assert eta_seconds({"steps_done": 0, "steps_total": 4}, 10) is None
    assert eta_seconds({"steps_done": 2, "steps_total": 4}, 10) == 10
    assert eta_seconds({"steps_done": 4, "steps_total": 4}, 10) == 0


def _view(status: str = "running") -> ThreadSnapshot:
    state = {
        "goal": "g",
        "plan": [
            {
                "id": "s1",
                "title": "One",
                "detail": "secret detail",
                "status": "done",
                "summary": "found the key facts",
            },
            {"id": "s2", "title": "Two", "detail": "", "status": "active"},
        ],
        "current": "s2",
        "usage": {"llm_calls": 3, "active_seconds": 12.0},
        "status": status,
    }
    return thread_snapshot(state, EnduroContext(max_usd=2.0), 1)


def _body(kind: str, extra: dict[str, Any], view: ThreadSnapshot | None = None) -> dict[str, Any]:
    base = snapshot("t-1", view or _view(), "1f0-abc")
    text = render_body(
        kind, event_id="evt_" + "0" * 32, seq=7, created_at=0.0, base=base, extra=extra
    )
    parsed: dict[str, Any] = json.loads(text)
    return parsed


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("run.started", {}),
        ("step.started", {"step": {"id": "s2", "title": "Two", "attempt": 1}}),
        ("tool.called", {"tool": {"name": "write_file", "duration_ms": 3, "ok": True}}),
        ("budget.warning", {"warning": warning_info("max_usd:80")}),
        ("run.heartbeat", {"in_flight": {"node": "act", "step_id": "s2", "seconds": 31.0}}),
        ("run.resumed", {"resumed_from": {"status": "paused", "stop_reason": "crashed"}}),
        ("plan.updated", {"plan": [{"id": "s1", "title": "One", "status": "done"}]}),
    ],
)
def test_bodies_match_the_published_schema(kind: str, extra: dict[str, Any]) -> None:
    body = _body(kind, extra)
    jsonschema_rs.validator_for(SCHEMA).validate(body)
    data = body["data"]
    assert (body["type"], body["timestamp"]) == (kind, "1970-01-01T00:00:00.000Z")
    assert data["progress"] == {
        "steps_done": 1,
        "steps_total": 2,
        "percent": 50.0,
        "eta_seconds": 12.0,
    }
    assert data["current_step"] == {"id": "s2", "title": "Two"}
    assert data["limits"]["max_usd"] == 2.0 and data["checkpoint_id"] == "1f0-abc"
    # Small: no goal, no step details or summaries, no report.
    text = json.dumps(body)
    for private in ("secret detail", "found the key facts", '"goal"', '"report"'):
        assert private not in text


def test_schema_rejects_what_it_should() -> None:
    validator = jsonschema_rs.validator_for(SCHEMA)
    assert not validator.is_valid(_body("step.started", {}))  # step info missing
    wrong = _body("run.completed", {})  # status is still `running`
    assert not validator.is_valid(wrong)
    assert validator.is_valid(_body("run.completed", {}, _view("completed")))


def test_huge_plan_is_dropped_not_sent() -> None:
    plan = [{"id": f"s{i}", "title": "t" * 200, "status": "pending"} for i in range(400)]
    body = _body("plan.updated", {"plan": plan})
    assert body["data"]["plan"] is None and body["data"]["truncated"] is True
    jsonschema_rs.validator_for(SCHEMA).validate(body)


def test_listen_board_keeps_one_live_line_per_thread() -> None:
    import io

    from enduro.webhooks.listen import ProgressBoard

    out = io.StringIO()
    board = ProgressBoard(out, live=True)

    def event(thread: str, seq: int, done: int) -> dict[str, object]:
        return {
            "type": "step.completed",
            "data": {
                "thread_id": thread,
                "seq": seq,
                "status": "running",
                "progress": {"steps_done": done, "steps_total": 3},
            },
        }

    board.accept("w1", event("a", 1, 1))
    board.accept("w2", event("b", 1, 0))
    board.accept("w3", event("a", 2, 2))
    board.accept("w3", event("a", 2, 2))  # a retry: not news
    board.close()
    assert list(board.lines) == ["a", "b"]
    assert "2/3" in board.lines["a"] and "#2" in board.lines["a"]
    assert "0/3" in board.lines["b"]
