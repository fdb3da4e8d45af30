"""`enduro worker`: a procrastinate worker that advances enduro threads, N at a time.

Invariants and why:
- A job advances its thread for at most one slice (`slice_seconds` or `slice_steps`
  super-steps), then drains at the super-step boundary (RunControl) and queues the thread
  again, so a thousand threads on ten workers all move and a deploy never waits an hour.
- First SIGTERM/SIGINT (a deploy): every running thread drains at its next super-step,
  goes back to the queue, and the worker exits 0 once they are handed back (procrastinate
  aborts what is left after `grace_seconds`; those are queued again too). A second signal
  stops every job at once; the last checkpoints hold (`durability="sync"`).
- A worker declared dead by the others (silent longer than the lease: kill -9, SIGSTOP, a
  partition) has had its jobs queued again and taken over; if it wakes up it must not touch
  them, not even to mark them finished, so it exits at once (`_exit_if_declared_dead`).
  Its thread writes are refused anyway by the lease fence (storage.fencing).
- Every worker also delivers every thread's pending webhook events (one sender for the
  database) and recovers stalled jobs (queue.recover_stalled); both are idempotent, so any
  number of workers can run them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import RunControl
from procrastinate import App, JobContext
from procrastinate.job_context import AbortReason
from procrastinate.worker import Worker

from enduro import threads
from enduro.errors import ThreadBusy, UnknownThread
from enduro.models import ModelFactory
from enduro.runner import Outcome, advance_with_backend
from enduro.storage import leases
from enduro.storage.backend import Backend, open_backend
from enduro.webhooks.config import WebhookConfig
from enduro.webhooks.session import WebhookSession
from enduro.workers import queue

log = logging.getLogger(__name__)

REQUEUE_REASONS = ("slice", "deploy")
EXIT_DECLARED_DEAD = 1


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs of `enduro worker`.

    Attributes:
        url: the PostgreSQL URL (checkpoints, enduro's tables, the queue).
        concurrency: threads advanced at once by this process.
        slice_seconds: longest time one job advances its thread before re-queueing it.
        slice_steps: or this many super-steps, whichever comes first (None: no cap).
        grace_seconds: after the first SIGTERM, how long running threads get to reach a
            super-step boundary before they are stopped where they are.
        keep_checkpoints: retention window per thread.
    """

    url: str
    concurrency: int = 10
    slice_seconds: float = 600.0
    slice_steps: int | None = None
    grace_seconds: float = 60.0
    keep_checkpoints: int = 20


class EnduroWorker:
    def __init__(self, options: WorkerOptions, model: ModelFactory) -> None:
        self.options = options
        self.model = model
        self.lease_seconds = leases.STALE_SECONDS
        self.controls: dict[str, RunControl] = {}
        self.job_tasks: set[asyncio.Task[Any]] = set()
        self.signals = 0
        self.backend: Backend | None = None
        self.webhooks: WebhookSession | None = None
        self.worker: Worker | None = None
        self.app: App | None = None

    async def run(self) -> int:
        """Run until signalled; 0 after a clean drain."""
        pool = self.options.concurrency * 2 + 4
        async with open_backend(self.options.url, pool_size=pool) as backend:
            self.backend = backend
            self.app = queue.new_app(self.options.url)
            self.app.task(name=queue.TASK_NAME, pass_context=True)(self._job)
            async with self.app.open_async(), self._webhook_session(backend) as webhooks:
                self.webhooks = webhooks
                self.worker = Worker(
                    app=self.app,
                    queues=[queue.QUEUE],
                    concurrency=self.options.concurrency,
                    install_signal_handlers=False,
                    shutdown_graceful_timeout=self.options.grace_seconds,
                    update_heartbeat_interval=self.lease_seconds / 3,
                    stalled_worker_timeout=self.lease_seconds,
                    fetch_job_polling_interval=min(5.0, self.lease_seconds / 3),
                    abort_job_polling_interval=min(5.0, self.lease_seconds / 3),
                )
                self._install_signals()
                side = [
                    asyncio.create_task(self._every(self.lease_seconds / 3, self._sweep)),
                    asyncio.create_task(self._registration()),
                ]
                try:
                    await self.worker.run()  # type: ignore[no-untyped-call]
                finally:
                    for task in side:
                        task.cancel()
                    await asyncio.gather(*side, return_exceptions=True)
                    self._remove_signals()
        return 0

    @contextlib.asynccontextmanager
    async def _webhook_session(self, backend: Backend) -> Any:
        # One sender for the whole database: events of threads whose run ended while their
        # receiver was down go out when it is back, with no command.
        session = WebhookSession(backend.db, WebhookConfig.from_env(), every_thread=True)
        session.sender.start()
        try:
            yield session
        finally:
            await session.close(flush=False)

    # -- signals ---------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        self.signals += 1
        assert self.worker is not None
        if self.signals == 1:
            log.warning(
                "stopping: %d threads drain at their next step and go back to the queue "
                "(signal again to stop at once)",
                len(self.controls),
            )
            for control in self.controls.values():
                control.request_drain("deploy")
            self.worker.stop()  # type: ignore[no-untyped-call]
            return
        log.warning("stopping at once: %d threads stop where they are", len(self.job_tasks))
        for task in self.job_tasks:
            task.cancel()

    # -- the job ---------------------------------------------------------------------------

    async def _job(self, context: JobContext, thread_id: str) -> str:
        """Procrastinate task `enduro.advance`: advance `thread_id` for one slice."""
        task = asyncio.current_task()
        assert task is not None and self.backend is not None
        self.job_tasks.add(task)
        control = RunControl()
        self.controls[thread_id] = control
        if self.signals:
            control.request_drain("deploy")
        timer = asyncio.get_running_loop().call_later(
            self.options.slice_seconds, control.request_drain, "slice"
        )
        try:
            outcome = await self._advance_guarded(context, thread_id, control)
        finally:
            timer.cancel()
            self.controls.pop(thread_id, None)
            self.job_tasks.discard(task)
        await self._exit_if_declared_dead(context)
        if outcome is None:
            return "nothing to do"
        if outcome.status == "paused" and outcome.stop_reason in REQUEUE_REASONS:
            await self._requeue(thread_id)
        return f"{outcome.status} ({outcome.stop_reason or '-'})"

    async def _advance_guarded(
        self, context: JobContext, thread_id: str, control: RunControl
    ) -> Outcome | None:
        """Run the segment in a task of its own, so that a user's abort (procrastinate
        cancels the job's task) does not cut the graph mid-step: `enduro cancel` set the
        durable flag, and the guard finishes the run gracefully. A shutdown abort or a
        second signal stops it at once, and the thread goes back to the queue."""
        inner = asyncio.create_task(self._advance_once(thread_id, control))
        while True:
            try:
                return await asyncio.shield(inner)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if context.abort_reason() == AbortReason.USER_REQUEST and self.signals < 2:
                    if task is not None:
                        task.uncancel()
                    # Set again here: a claim that raced with `enduro cancel` clears it.
                    assert self.backend is not None
                    await threads.request_cancel(self.backend.db, thread_id)
                    continue
                inner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inner
                await asyncio.shield(self._requeue(thread_id))
                raise

    async def _advance_once(self, thread_id: str, control: RunControl) -> Outcome | None:
        assert self.backend is not None
        steps = 0

        def on_update(_update: dict[str, Any]) -> None:
            nonlocal steps
            steps += 1
            if self.options.slice_steps is not None and steps >= self.options.slice_steps:
                control.request_drain("slice")

        for attempt in range(3):
            try:
                return await advance_with_backend(
                    self.backend,
                    thread_id,
                    control=control,
                    model=self.model,
                    on_update=on_update,
                    keep_checkpoints=self.options.keep_checkpoints,
                    webhooks=self.webhooks,
                )
            except UnknownThread as exc:
                log.error("job for thread %s dropped: %s", thread_id, exc)
                return None
            except ThreadBusy as exc:
                # A process still holds a live lease (a foreground run, or a worker whose
                # lease has not expired yet): wait for it to end or to expire.
                log.info("%s (attempt %d)", exc, attempt + 1)
                await asyncio.sleep(self.lease_seconds / 2)
        log.warning("thread %s is run by another live process; leaving it to it", thread_id)
        return None

    async def _requeue(self, thread_id: str) -> None:
        assert self.backend is not None and self.app is not None
        await threads.mark_queued(self.backend.db, thread_id)
        await queue.defer(self.app, thread_id)

    async def _exit_if_declared_dead(self, context: JobContext) -> None:
        """After a pause past the lease, this job may belong to another worker now."""
        assert self.backend is not None and self.worker is not None
        row = await self.backend.db.fetchone(
            "SELECT status::text AS status, worker_id FROM procrastinate_jobs WHERE id = %s",
            (context.job.id,),
        )
        if row is None or (row["status"] == "doing" and row["worker_id"] == self.worker.worker_id):
            return
        _declared_dead(f"job {context.job.id} now belongs to worker {row['worker_id']}")

    # -- side tasks ------------------------------------------------------------------------

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
            except Exception as exc:  # the database may blip; the next round retries
                log.warning("%s: %s", getattr(action, "__name__", "side task"), exc)
            await asyncio.sleep(seconds)

    async def _sweep(self) -> None:
        assert self.app is not None
        await queue.recover_stalled(self.app, self.lease_seconds)

    async def _registration(self) -> None:
        """Record host and pid for `enduro workers`; exit if declared dead later."""
        assert self.backend is not None and self.worker is not None
        while self.worker.worker_id is None:  # noqa: ASYNC110 - set inside procrastinate
            await asyncio.sleep(0.05)
        worker_id = self.worker.worker_id
        await queue.register(self.backend.db, worker_id, self.options.concurrency)
        log.warning("worker %d ready (concurrency %d)", worker_id, self.options.concurrency)
        try:
            while True:
                await asyncio.sleep(self.lease_seconds / 3)
                with contextlib.suppress(Exception):
                    if not await queue.still_registered(self.backend.db, worker_id):
                        _declared_dead(f"worker {worker_id} was pruned by the others")
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(queue.unregister(self.backend.db, worker_id))


def _declared_dead(why: str) -> None:
    """Exit without another write: the jobs went back to the queue and run elsewhere."""
    log.error(
        "this worker was silent longer than the lease (%.0f s) and declared dead (%s); "
        "its threads continue on other workers. Exiting now.",
        leases.STALE_SECONDS,
        why,
    )
    logging.shutdown()
    os._exit(EXIT_DECLARED_DEAD)
