"""The background sender: delivers the outbox with httpx, off the agent's path.

It runs as a task on the agent's event loop but never in its way: a node only writes an
outbox row, and everything slow (connecting, waiting on a receiver, backing off) happens in
this task, with every attempt capped by a hard timeout. Chains, one per (thread, endpoint),
run concurrently; within a chain one event at a time, strictly in `seq` order: event n+1
is not sent before n is delivered or dead. A lease in the database keeps other processes
(another worker, `enduro webhooks deliver`) off a chain while this one holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

import httpx

from enduro._redact import redact
from enduro._retry_after import retry_after_of
from enduro.storage import Database
from enduro.storage.leases import this_owner
from enduro.webhooks import outbox
from enduro.webhooks.config import WebhookConfig
from enduro.webhooks.events import MAX_ERROR_CHARS
from enduro.webhooks.retry import RetryPolicy
from enduro.webhooks.signing import Signer, delivery_headers

log = logging.getLogger(__name__)

MAX_CONCURRENT_ATTEMPTS = 16
# Only the start of an answer is read: a receiver's body is never needed, and a huge or
# endless one must not tie the sender up.
MAX_ANSWER_BYTES = 4096
LEASE_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST.

    `status` is None when no answer came; `retry_after` is the receiver's Retry-After in
    seconds, if it sent one.
    """

    ok: bool
    status: int | None
    error: str | None
    retry_after: float | None = None


class Sender:
    """Delivers the outbox's events, one chain per (thread, URL), in order, with retries.

    Each chain sends its oldest pending event and moves on only when it is delivered or
    dead, so a receiver sees a thread's events in seq order. A lease in the database keeps
    other processes off a chain while this sender holds it.
    """

    def __init__(
        self,
        db: Database,
        config: WebhookConfig,
        *,
        thread_ids: Collection[str] | None = (),
        policy: RetryPolicy | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """Set up a sender on `db` with `config`; nothing is sent before `start`.

        thread_ids: the threads this sender delivers for (more can be `watch`ed); None for every
        thread in the database (`enduro webhooks deliver`).
        """
        self.db = db
        self.config = config
        self.scope: set[str] | None = None if thread_ids is None else set(thread_ids)
        self.policy = policy or RetryPolicy(config.schedule, config.jitter, config.max_age_seconds)
        self.owner = f"{this_owner()}/{uuid.uuid4().hex[:8]}"
        self.stats: Counter[str] = Counter()
        self._signer = Signer(config.secret) if config.secret else None
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._chains: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._not_before: dict[tuple[str, str], float] = {}
        # Chains not yet attempted by this process are due at once, whatever their backoff
        # says: a restart (`enduro resume`, `webhooks deliver`) is when a receiver that was
        # down is most likely back, and it is what "flush what is pending" means.
        self._tried: set[tuple[str, str]] = set()
        self._held_warned: set[tuple[str, str]] = set()
        # Chains whose last attempt failed: an outage is logged as a warning once, not per
        # event and attempt.
        self._failing: set[tuple[str, str]] = set()
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_ATTEMPTS)

    # -- lifecycle -------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                # A redirect would send a signed body somewhere nobody configured.
                follow_redirects=False,
                timeout=httpx.Timeout(self.config.timeout_seconds),
            )
        return self._client

    @property
    def running(self) -> bool:
        """Whether the background delivery loop is running."""
        return self._loop_task is not None and not self._loop_task.done()

    def start(self) -> None:
        """Start the background delivery loop (no-op if it runs)."""
        self._stopping = False
        if not self.running:
            self._loop_task = asyncio.create_task(self._loop(), name="enduro-webhook-sender")

    def watch(self, thread_id: str) -> None:
        """Deliver for `thread_id` too from now on, and look for its events at once."""
        if self.scope is not None:
            self.scope.add(thread_id)
        self.wake()

    def wake(self) -> None:
        """Look for deliverable events now instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop the loop and every chain; undelivered events stay in the outbox for later."""
        # The flag, not only cancel(), ends the loop: a cancel that lands while a wait is
        # finishing can be lost, and the loop would then run (and start chains) forever.
        self._stopping = True
        while tasks := [t for t in (self._loop_task, *self._chains.values()) if t is not None]:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop_task = None
            for chain in [c for c, t in self._chains.items() if t.done()]:
                self._chains.pop(chain, None)
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def flush(self, seconds: float) -> bool:
        """Wait until nothing deliverable is pending, for at most `seconds`.

        The loop keeps its backoff meanwhile. True when everything went out.
        """
        self.start()
        deadline = time.monotonic() + seconds
        while True:
            if not await self._sendable_heads():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.wake()
            await asyncio.sleep(min(0.05, left))

    async def deliver_once(self) -> None:
        """One pass for `enduro webhooks deliver`.

        Every chain in scope goes until it is empty or an attempt fails (that failure is recorded
        with its backoff).
        """
        while True:
            heads = [h for h in await self._sendable_heads() if h.chain not in self._tried]
            if not heads:
                return
            await asyncio.gather(*(self._run_chain(h.thread_id, h.endpoint_id) for h in heads))

    # -- the loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            next_due: float | None = None
            try:
                next_due = await self._dispatch()
            except Exception as exc:  # the database may blip; the next round retries
                log.warning("webhook sender: %s", redact(str(exc), MAX_ERROR_CHARS))
            timeout = self.config.poll_seconds
            if next_due is not None:
                timeout = min(timeout, max(next_due - time.time(), 0.0))
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _sendable_heads(self) -> list[outbox.Head]:
        heads = await outbox.heads(self.db, self.scope)
        return [h for h in heads if self._can_sign(h)]

    async def _dispatch(self) -> float | None:
        now = time.time()
        next_due: float | None = None
        for head in await self._sendable_heads():
            if self._stopping:
                break
            chain = head.chain
            if chain in self._chains:
                continue
            due_at = max(head.next_attempt_at, self._not_before.get(chain, 0.0))
            if chain in self._tried and due_at > now:
                next_due = due_at if next_due is None else min(next_due, due_at)
                continue
            task = asyncio.create_task(self._run_chain(*chain), name=f"enduro-webhook:{chain}")
            self._chains[chain] = task
            task.add_done_callback(functools.partial(self._chain_done, chain))
        return next_due

    def _chain_done(self, chain: tuple[str, str], task: asyncio.Task[None]) -> None:
        self._chains.pop(chain, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The database went away mid-chain (or another error): nothing more was marked,
            # so a later round sends the head again (at least once; receivers dedupe on
            # webhook-id).
            log.warning(
                "webhook chain %s of thread %s stopped: %s",
                chain[1],
                chain[0],
                redact(str(exc), MAX_ERROR_CHARS),
            )
            self._not_before[chain] = time.time() + self.config.poll_seconds
        self.wake()

    def _can_sign(self, head: outbox.Head) -> bool:
        wanted = head.secret_fingerprint
        if wanted is None or wanted == self.config.fingerprint:
            return True
        if head.chain not in self._held_warned:
            self._held_warned.add(head.chain)
            have = self.config.fingerprint or "no secret"
            log.warning(
                "webhook endpoint %s of thread %s was registered with signing secret %s; "
                "this process has %s, so its deliveries wait. Pass the same secret "
                "(--webhook-secret / ENDURO_WEBHOOK_SECRET), or register the new one with "
                "`enduro resume THREAD_ID --webhook-url URL --webhook-secret whsec_…`",
                head.endpoint_id,
                head.thread_id,
                wanted,
                have,
            )
        return False

    # -- one chain -------------------------------------------------------------------------

    async def _run_chain(self, thread_id: str, endpoint_id: str) -> None:
        chain = (thread_id, endpoint_id)
        endpoint = await outbox.endpoint(self.db, thread_id, endpoint_id)
        if endpoint is None or endpoint.state != "active":
            return
        lease = self.config.timeout_seconds + LEASE_MARGIN_SECONDS
        if not await outbox.take_lease(self.db, thread_id, endpoint_id, self.owner, lease):
            self._not_before[chain] = time.time() + self.config.poll_seconds
            return
        try:
            while True:
                delivery = await outbox.head(self.db, thread_id, endpoint_id)
                if delivery is None:
                    return
                fresh = chain not in self._tried
                self._tried.add(chain)
                if not fresh and delivery.next_attempt_at > time.time():
                    return  # backing off; the loop comes back when it is due
                async with self._semaphore:
                    attempt = await self._attempt(endpoint, delivery)
                if not await self._record(endpoint, delivery, attempt):
                    return
                await outbox.take_lease(self.db, thread_id, endpoint_id, self.owner, lease)
        finally:
            # Awaited, not shielded: `stop()` cancels this task and then closes the database,
            # so the release must finish inside the task (a shielded release would outlive
            # it, hit a closed database and leave a lease that blocks the next session).
            with contextlib.suppress(Exception):
                await outbox.release_lease(self.db, thread_id, endpoint_id, self.owner)

    async def _attempt(self, endpoint: outbox.Endpoint, d: outbox.Delivery) -> Attempt:
        signer = self._signer if endpoint.secret_fingerprint else None
        headers = delivery_headers(d.event_id, d.body, signer)
        self.stats["attempts"] += 1
        timeout = self.config.timeout_seconds
        try:
            # A hard cap on the whole exchange: httpx's timeouts are per read, and a
            # receiver that trickles bytes would otherwise hold the chain forever.
            async with asyncio.timeout(timeout):
                async with self._http().stream(
                    "POST", endpoint.url, content=d.body.encode(), headers=headers
                ) as answer:
                    received = 0
                    async for chunk in answer.aiter_raw():
                        received += len(chunk)
                        if received >= MAX_ANSWER_BYTES:
                            break
        except TimeoutError:
            return Attempt(False, None, f"no answer within {timeout:g} s")
        except httpx.HTTPError as exc:
            return Attempt(
                False, None, redact(f"{type(exc).__name__}: {exc}", MAX_ERROR_CHARS) or "error"
            )
        status = answer.status_code
        if 200 <= status < 300:
            return Attempt(True, status, None)
        hint = " (redirects are not followed: configure the final URL)" if status < 400 else ""
        return Attempt(
            False,
            status,
            f"HTTP {status}{hint}",
            retry_after_of(answer.headers),
        )

    async def _record(self, ep: outbox.Endpoint, d: outbox.Delivery, a: Attempt) -> bool:
        """Store the attempt's outcome; True when the chain may go on to the next event."""
        where = f"{redact(ep.url)} ({ep.endpoint_id})"
        if a.ok:
            assert a.status is not None
            await outbox.mark_delivered(self.db, d, a.status)
            self.stats["delivered"] += 1
            if (d.thread_id, d.endpoint_id) in self._failing:
                self._failing.discard((d.thread_id, d.endpoint_id))
                log.warning("webhook endpoint %s delivers again", where)
            return True
        self.stats["failed"] += 1
        first_failure = (d.thread_id, d.endpoint_id) not in self._failing
        self._failing.add((d.thread_id, d.endpoint_id))
        if a.status == 410:
            # 410 Gone: the receiver asks for nothing more. The chain stops here; its
            # events stay in the outbox, and `enduro webhooks retry` turns it back on.
            await outbox.mark_failed(
                self.db,
                d,
                attempts=d.attempts + 1,
                next_attempt_at=time.time(),
                status=410,
                error="HTTP 410 Gone: endpoint disabled",
                dead=True,
            )
            await outbox.disable(self.db, d.thread_id, d.endpoint_id, "HTTP 410 Gone")
            self.stats["dead"] += 1
            log.warning(
                "webhook endpoint %s answered 410 Gone: disabled for thread %s "
                "(`enduro webhooks retry %s` re-enables it)",
                where,
                d.thread_id,
                d.thread_id,
            )
            return False
        attempts = d.attempts + 1
        dead = self.policy.is_dead(attempts, time.time() - d.retry_from)
        delay = self.policy.delay(attempts, a.retry_after)
        error = a.error or "failed"
        await outbox.mark_failed(
            self.db,
            d,
            attempts=attempts,
            next_attempt_at=time.time() + delay,
            status=a.status,
            error=error,
            dead=dead,
        )
        if dead:
            self.stats["dead"] += 1
            log.warning(
                "webhook %s seq %d to %s is dead after %d attempts (%s); later events "
                "go on, `enduro webhooks retry %s` re-sends it",
                d.type,
                d.seq,
                where,
                attempts,
                error,
                d.thread_id,
            )
            return True
        level = logging.WARNING if first_failure else logging.INFO
        log.log(
            level,
            "webhook %s seq %d to %s failed (%s); attempt %d in %.1f s",
            d.type,
            d.seq,
            where,
            error,
            attempts + 1,
            delay,
        )
        return False
