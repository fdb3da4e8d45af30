"""Migration 3: the webhook outbox, as SQL valid on PostgreSQL and SQLite alike.

- `enduro_webhook_seq`: the last sequence number handed out per thread. Allocating from a
  counter row (an upsert that locks it) rather than `MAX(seq) + 1` keeps two writers apart
  and never reuses a number, even after old events are deleted.
- `enduro_webhook_events`: one row per event, with the exact JSON body that is signed and
  sent, so every retry sends the same bytes under the same `webhook-id`. `dedupe_key` makes
  events derived from the graph's state (a step completing, a budget threshold) exactly-once
  per thread even when a crash makes a node run again.
- `enduro_webhook_endpoints`: the endpoints a thread delivers to, with a fingerprint of the
  signing secret (never the secret), the endpoint's state (`active` / `disabled` after a
  410) and the lease that keeps one sender at a time on a (thread, endpoint) chain.
- `enduro_webhook_deliveries`: one row per (event, endpoint): `pending`, `delivered` or
  `dead`, with attempts, the next attempt time, the last error and `retry_from`, the start
  of the current retry schedule (the event's creation, or when `webhooks retry` revived it).
"""

from __future__ import annotations

WEBHOOK_OUTBOX: list[str] = [
    """CREATE TABLE IF NOT EXISTS enduro_webhook_seq (
        thread_id TEXT PRIMARY KEY,
        last_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS enduro_webhook_events (
        thread_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        dedupe_key TEXT,
        body TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, seq)
    )""",
    # NULL keys (heartbeats) are distinct from each other on both engines.
    "CREATE UNIQUE INDEX IF NOT EXISTS enduro_webhook_events_dedupe"
    " ON enduro_webhook_events (thread_id, dedupe_key)",
    """CREATE TABLE IF NOT EXISTS enduro_webhook_endpoints (
        thread_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        url TEXT NOT NULL,
        secret_fingerprint TEXT,
        state TEXT NOT NULL,
        disabled_reason TEXT,
        lease_owner TEXT,
        lease_until DOUBLE PRECISION,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (thread_id, endpoint_id)
    )""",
    """CREATE TABLE IF NOT EXISTS enduro_webhook_deliveries (
        thread_id TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        retry_from DOUBLE PRECISION NOT NULL,
        last_status INTEGER,
        last_error TEXT,
        updated_at DOUBLE PRECISION NOT NULL,
        delivered_at DOUBLE PRECISION,
        PRIMARY KEY (thread_id, endpoint_id, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS enduro_webhook_deliveries_state"
    " ON enduro_webhook_deliveries (state, thread_id, endpoint_id, seq)",
]
