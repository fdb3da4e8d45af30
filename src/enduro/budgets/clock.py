"""Active run time, summed over every segment of the run.

It is the wall time during which at least one node of the thread runs in this process.

Parallel tool tasks count once (the union of their intervals), idle time between segments
never counts, and the running total is flushed to the ledger's `enduro_clock` row every
`TICK_SECONDS` and when the last node ends, so a crash (even kill -9) loses at most a tick.
Only checkpoint writes between super-steps fall outside every node; they take milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from enduro.budgets.ledger import Ledger

log = logging.getLogger(__name__)

TICK_SECONDS = 5.0


@dataclass
class _Track:
    base: float
    """The thread's active seconds in the database when this stretch of activity began."""
    mark: float
    """Monotonic time up to which activity has been accrued."""
    flushed: float = 0.0
    pending: float = 0.0
    running: int = 0
    ticker: asyncio.Task[None] | None = field(default=None, repr=False)

    def accrue(self) -> None:
        now = time.monotonic()
        if self.running > 0:
            self.pending += now - self.mark
        self.mark = now


class ActiveClock:
    """Per-thread active run time in this process, in seconds.

    A thread's time runs while at least one of its nodes is inside `running` (parallel
    nodes count once) and is flushed to the ledger's `enduro_clock` row, so the total
    survives crashes and adds up over every segment of the run.
    """

    def __init__(self) -> None:
        self._tracks: dict[str, _Track] = {}
        self._lock = asyncio.Lock()

    def used(self, thread_id: str) -> float | None:
        """Active seconds so far, if a node of the thread is running in this process."""
        track = self._tracks.get(thread_id)
        if track is None or track.running == 0:
            return None
        track.accrue()
        return track.base + track.flushed + track.pending

    @contextlib.asynccontextmanager
    async def running(self, ledger: Ledger, thread_id: str) -> AsyncIterator[None]:
        """Count the enclosed node's time against the thread."""
        await self._enter(ledger, thread_id)
        try:
            yield
        finally:
            # Shielded: a cancelled node (second signal, killed task) still records its time.
            await asyncio.shield(self._exit(ledger, thread_id))

    async def _enter(self, ledger: Ledger, thread_id: str) -> None:
        async with self._lock:
            track = self._tracks.get(thread_id)
            if track is None or track.running == 0:
                base = await ledger.active_seconds(thread_id)
                track = _Track(base=base, mark=time.monotonic())
                self._tracks[thread_id] = track
                track.ticker = asyncio.create_task(self._tick(ledger, thread_id, track))
            track.accrue()
            track.running += 1

    async def _exit(self, ledger: Ledger, thread_id: str) -> None:
        async with self._lock:
            track = self._tracks[thread_id]
            track.accrue()
            track.running -= 1
            if track.running > 0:
                return
            if track.ticker is not None:
                track.ticker.cancel()
            await self._flush(ledger, thread_id, track)

    async def _tick(self, ledger: Ledger, thread_id: str, track: _Track) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            track.accrue()
            await asyncio.shield(self._flush(ledger, thread_id, track))

    @staticmethod
    async def _flush(ledger: Ledger, thread_id: str, track: _Track) -> None:
        seconds, track.pending = track.pending, 0.0
        if seconds <= 0:
            return
        try:
            await ledger.add_active_seconds(thread_id, seconds)
        except Exception as exc:  # the database may blip; keep the time for the next flush
            track.pending += seconds
            log.warning("could not record active time (%.1fs kept for later): %s", seconds, exc)
        else:
            track.flushed += seconds
