"""The outbox and the sender against real HTTP receivers on 127.0.0.1, on both engines."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from enduro.storage import Backend, open_backend
from enduro.webhooks import outbox
from enduro.webhooks.config import WebhookConfig, endpoint_id, fingerprint, new_secret
from enduro.webhooks.sender import Sender
from receiver import Answer, Hit, Receiver, always

FAST: dict[str, Any] = {
    "schedule": (0.05, 0.05, 0.05),
    "jitter": 0.0,
    "poll_seconds": 0.05,
    "max_age_seconds": 60.0,
}


@pytest.fixture
async def backend(db_url: str) -> AsyncIterator[Backend]:
    async with open_backend(db_url) as opened:
        yield opened


def _tid() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _render(kind: str, thread_id: str) -> Any:
    def render(seq: int, event_id: str, at: float) -> str:
        data = {"id": event_id, "seq": seq, "thread_id": thread_id}
        return json.dumps({"type": kind, "timestamp": "t", "data": data})

    return render


async def _events(
    backend: Backend, thread_id: str, urls: list[str], n: int, secret: str | None = None
) -> None:
    await outbox.subscribe(backend.db, thread_id, urls, fingerprint(secret) if secret else None)
    for _ in range(n):
        assert await outbox.append(backend.db, thread_id, "run.heartbeat", _render("x", thread_id))


async def _rows(backend: Backend, thread_id: str) -> list[dict[str, Any]]:
    return await outbox.deliveries(
        backend.db, thread_id=thread_id, states=("pending", "dead", "delivered")
    )


def _first_arrivals(hits: list[Hit]) -> list[int]:
    seen: list[int] = []
    for hit in hits:
        if hit.seq not in seen:
            seen.append(hit.seq)
    return seen


def _same_id_per_seq(hits: list[Hit]) -> bool:
    ids: dict[int, set[str]] = {}
    for hit in hits:
        ids.setdefault(hit.seq, set()).add(hit.headers["webhook-id"])
    return all(len(v) == 1 for v in ids.values())


async def test_seq_is_allocated_atomically_by_two_writers(db_url: str) -> None:
    tid = _tid()
    async with open_backend(db_url) as one, open_backend(db_url) as two:
        await outbox.subscribe(one.db, tid, ["https://a.example/x", "https://b.example/y"], None)

        async def write(b: Backend, n: int) -> list[int]:
            out = []
            for _ in range(n):
                got = await outbox.append(b.db, tid, "run.heartbeat", _render("x", tid))
                assert got is not None
                out.append(got[0])
            return out

        batches = await asyncio.gather(*(write(b, 15) for b in (one, two, one, two)))
        seqs = sorted(s for batch in batches for s in batch)
        assert seqs == list(range(1, 61))
        rows = await _rows(one, tid)
        assert len(rows) == 120 and {r["state"] for r in rows} == {"pending"}


async def test_dedupe_key_writes_once_and_leaves_no_gap(backend: Backend) -> None:
    tid = _tid()
    await outbox.subscribe(backend.db, tid, ["https://a.example/x"], None)
    first = await outbox.append(backend.db, tid, "step.completed", _render("s", tid), "k1")
    again = await outbox.append(backend.db, tid, "step.completed", _render("s", tid), "k1")
    other = await outbox.append(backend.db, tid, "run.heartbeat", _render("h", tid))
    assert first is not None and first[0] == 1 and again is None
    assert other is not None and other[0] == 2


async def test_subscribe_never_downgrades_a_signed_endpoint(backend: Backend) -> None:
    tid, url, secret = _tid(), "https://a.example/x", new_secret()
    await outbox.subscribe(backend.db, tid, [url], fingerprint(secret))
    await outbox.subscribe(backend.db, tid, [url], None)
    (ep,) = await outbox.endpoints(backend.db, tid)
    assert ep.secret_fingerprint == fingerprint(secret) and ep.endpoint_id == endpoint_id(url)
    await outbox.disable(backend.db, tid, ep.endpoint_id, "HTTP 410 Gone")
    await outbox.subscribe(backend.db, tid, [url], fingerprint(secret))
    (ep,) = await outbox.endpoints(backend.db, tid)
    assert ep.state == "disabled", "a 410 stays until `webhooks retry`"


async def test_flapping_receiver_gets_every_event_once_in_order(backend: Backend) -> None:
    tid = _tid()
    with Receiver(lambda n, _h: Answer(500 if n % 2 == 0 else 200)) as rec:
        await _events(backend, tid, [rec.url], 6)
        sender = Sender(backend.db, WebhookConfig(**FAST), thread_ids=[tid])
        try:
            assert await sender.flush(15)
        finally:
            await sender.stop()
        assert [h.seq for h in rec.accepted()] == [1, 2, 3, 4, 5, 6]
        # Strict head-of-line: seq n+1 is never sent before n was accepted.
        assert _first_arrivals(rec.hits) == [1, 2, 3, 4, 5, 6]
        assert [h.status for h in rec.hits] == [500, 200] * 6
        assert _same_id_per_seq(rec.hits)
    rows = await _rows(backend, tid)
    assert [(r["state"], r["attempts"], r["last_status"]) for r in rows] == [
        ("delivered", 2, 200)
    ] * 6


async def test_hanging_receiver_times_out_and_holds_only_its_own_chain(backend: Backend) -> None:
    tid = _tid()
    with Receiver(lambda _n, _h: Answer(hang=True)) as stuck, Receiver() as fine:
        await _events(backend, tid, [stuck.url, fine.url], 3)
        config = WebhookConfig(timeout_seconds=0.3, **FAST)
        sender = Sender(backend.db, config, thread_ids=[tid])
        sender.start()
        try:
            started = time.monotonic()
            assert await fine.until(lambda hits: len(hits) == 3, 5)
            assert time.monotonic() - started < 2, "the hanging endpoint delayed another one"
            assert await stuck.until(lambda hits: len(hits) >= 3, 10)
        finally:
            await sender.stop()
        assert {h.seq for h in stuck.hits} == {1}, "seq 2 went out before seq 1 was delivered"
    rows = {(r["endpoint_id"], r["seq"]): r for r in await _rows(backend, tid)}
    head = rows[(endpoint_id(stuck.url), 1)]
    assert head["state"] == "pending" and head["attempts"] >= 2
    assert head["last_error"] == "no answer within 0.3 s"
    assert {rows[(endpoint_id(fine.url), s)]["state"] for s in (1, 2, 3)} == {"delivered"}


async def test_410_disables_the_endpoint_until_retry(backend: Backend) -> None:
    tid = _tid()
    with Receiver(always(410)) as gone:
        await _events(backend, tid, [gone.url], 3)
        sender = Sender(backend.db, WebhookConfig(**FAST), thread_ids=[tid])
        try:
            assert await sender.flush(5)  # nothing deliverable is left: the endpoint is off
            await asyncio.sleep(0.3)
        finally:
            await sender.stop()
        assert len(gone.hits) == 1
        (ep,) = await outbox.endpoints(backend.db, tid)
        assert (ep.state, ep.disabled_reason) == ("disabled", "HTTP 410 Gone")
        rows = await _rows(backend, tid)
        assert [(r["seq"], r["state"]) for r in rows] == [
            (1, "dead"),
            (2, "pending"),
            (3, "pending"),
        ]

        gone.script = always(200)
        assert await outbox.revive(backend.db, thread_id=tid) == (1, 1)
        sender = Sender(backend.db, WebhookConfig(**FAST), thread_ids=[tid])
        try:
            assert await sender.flush(5)
        finally:
            await sender.stop()
        assert [h.seq for h in gone.accepted()] == [1, 2, 3]


async def test_signatures_verify_with_standardwebhooks_and_401_is_retried(
    backend: Backend,
) -> None:
    tid, secret = _tid(), new_secret()
    with Receiver(secret=new_secret()) as rec:  # verifies with the wrong secret first
        await _events(backend, tid, [rec.url], 2, secret)
        config = WebhookConfig(secret=secret, **{**FAST, "schedule": (0.2,) * 5})
        sender = Sender(backend.db, config, thread_ids=[tid])
        sender.start()
        try:
            assert await rec.until(lambda hits: len(hits) >= 2, 5)
            rec.secret = secret
            assert await sender.flush(10)
        finally:
            await sender.stop()
        assert [h.verified for h in rec.hits[:2]] == [False, False]
        assert {h.status for h in rec.hits[:2]} == {401}
        assert [h.seq for h in rec.accepted()] == [1, 2]
        assert all(h.verified for h in rec.accepted())
        assert _same_id_per_seq(rec.hits)
        for hit in rec.hits:
            assert abs(int(hit.headers["webhook-timestamp"]) - time.time()) < 30
            assert hit.headers["webhook-signature"].startswith("v1,")


async def test_retry_after_is_honoured(backend: Backend) -> None:
    tid = _tid()
    script = lambda n, _h: Answer(503, {"Retry-After": "1"}) if n == 0 else Answer(200)  # noqa: E731
    with Receiver(script) as rec:
        await _events(backend, tid, [rec.url], 1)
        sender = Sender(backend.db, WebhookConfig(**FAST), thread_ids=[tid])
        try:
            assert await sender.flush(10)
        finally:
            await sender.stop()
        assert [h.status for h in rec.hits] == [503, 200]
        assert rec.hits[1].at - rec.hits[0].at >= 0.9


async def test_dead_event_lets_later_ones_through_and_retry_resends_it(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    tid = _tid()
    with Receiver(lambda _n, hit: Answer(500 if hit.seq == 1 else 200)) as rec:
        await _events(backend, tid, [rec.url], 3)
        sender = Sender(backend.db, WebhookConfig(**FAST), thread_ids=[tid])
        with caplog.at_level(logging.WARNING, logger="enduro.webhooks.sender"):
            try:
                assert await sender.flush(60)
            finally:
                await sender.stop()
        assert [h.seq for h in rec.hits] == [1, 1, 1, 1, 2, 3]
        assert "is dead after 4 attempts" in caplog.text
        rows = await _rows(backend, tid)
        assert [(r["seq"], r["state"], r["attempts"]) for r in rows] == [
            (1, "dead", 4),
            (2, "delivered", 1),
            (3, "delivered", 1),
        ]
        rec.script = always(200)
        assert await outbox.revive(backend.db, thread_id=tid) == (1, 0)
        sender = Sender(backend.db, WebhookConfig(**FAST), thread_ids=[tid])
        try:
            assert await sender.flush(5)
        finally:
            await sender.stop()
        assert [h.seq for h in rec.accepted()] == [2, 3, 1]
        assert _same_id_per_seq(rec.hits)


async def test_endpoint_waits_for_its_secret(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    tid, secret = _tid(), new_secret()
    with Receiver(secret=secret) as rec:
        await _events(backend, tid, [rec.url], 2, secret)
        for config in (WebhookConfig(**FAST), WebhookConfig(secret=new_secret(), **FAST)):
            sender = Sender(backend.db, config, thread_ids=[tid])
            with caplog.at_level(logging.WARNING, logger="enduro.webhooks.sender"):
                try:
                    assert await sender.flush(0.5)
                    await asyncio.sleep(0.2)
                finally:
                    await sender.stop()
        assert rec.hits == [], "an endpoint registered as signed was sent unsigned or mis-signed"
        assert caplog.text.count("so its deliveries wait") == 2
        assert secret not in caplog.text
        sender = Sender(backend.db, WebhookConfig(secret=secret, **FAST), thread_ids=[tid])
        try:
            assert await sender.flush(5)
        finally:
            await sender.stop()
        assert [h.seq for h in rec.accepted()] == [1, 2] and all(h.verified for h in rec.hits)


async def test_two_senders_never_share_a_chain(db_url: str) -> None:
    tid = _tid()

    def slow_ok(_n: int, _hit: Hit) -> Answer:
        time.sleep(0.02)
        return Answer(200)

    with Receiver(slow_ok) as rec:
        async with open_backend(db_url) as one, open_backend(db_url) as two:
            await _events(one, tid, [rec.url], 12)
            senders = [Sender(b.db, WebhookConfig(**FAST), thread_ids=[tid]) for b in (one, two)]
            try:
                done = await asyncio.gather(*(s.flush(15) for s in senders))
            finally:
                await asyncio.gather(*(s.stop() for s in senders))
            assert all(done)
        assert [h.seq for h in rec.hits] == list(range(1, 13))


async def test_a_new_process_sends_pending_events_at_once(backend: Backend) -> None:
    tid = _tid()
    with Receiver(always(500)) as rec:
        await _events(backend, tid, [rec.url], 2)
        slow = WebhookConfig(**{**FAST, "schedule": (3600.0,)})
        first = Sender(backend.db, slow, thread_ids=[tid])
        try:
            assert not await first.flush(0.3)  # failed once, next attempt in an hour
        finally:
            await first.stop()
        assert len(rec.hits) == 1
        rec.script = always(200)
        again = Sender(backend.db, slow, thread_ids=[tid])  # as after `enduro resume`
        try:
            assert await again.flush(5)
        finally:
            await again.stop()
        assert [h.seq for h in rec.accepted()] == [1, 2]
