"""SIGINT and SIGTERM for the whole life of one `enduro` command.

Invariant: from the moment `main` starts to the last byte of output, a signal is handled
by this module, never by Python's or the OS's default (a traceback, or death with 143 and
nothing on stdout). What a signal means depends on the phase the command is in:

- before the command's async part starts (argument parsing): stop at once (`Interrupted`);
- inside it, the phase's callback decides (`on_signal`): a run drains at the next step
  boundary on the first signal and stops now on the second; a finished run stops waiting
  for its last webhook deliveries (they stay in the outbox) and still prints its status;
- after the result is printed: ignored, the exit code is already decided.

One Python-level handler (`signal.signal`) is used throughout rather than the event loop's
`add_signal_handler`, because that one is removed (back to the defaults) when the loop
closes; the handler forwards to the running loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from types import FrameType

__all__ = ["Interrupted", "SignalGate"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A signal (SIGINT or SIGTERM) arrived outside the command's async part.

    A `KeyboardInterrupt`, so that code which stops cleanly on Ctrl-C (`webhooks listen`)
    stops as cleanly on SIGTERM.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


class SignalGate:
    """The process's SIGINT/SIGTERM handler, with a per-phase callback.

    Attributes:
        count: signals received so far.
    """

    def __init__(self) -> None:
        self.count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback: Callable[[int], None] | None = None
        self._done = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only)."""
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Give SIGINT and SIGTERM back to the handlers installed before `install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def on_signal(self, callback: Callable[[int], None] | None) -> None:
        """Route signals to `callback(count)` on the running loop from now on.

        Args:
            callback: called on the event loop with the number of signals received so
                far; None makes signals cancel the current task (the default).
        """
        self._loop = asyncio.get_running_loop()
        if callback is None:
            task = asyncio.current_task()

            def cancel(_count: int) -> None:
                if task is not None:
                    task.cancel()

            callback = cancel
        self._callback = callback

    def leave_loop(self) -> None:
        """The async part is over: signals stop being forwarded to the loop."""
        self._loop, self._callback = None, None

    def finish(self) -> None:
        """The result is out: from now on signals are ignored."""
        self._done = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self._done:
            return
        loop, callback = self._loop, self._callback
        if loop is not None and callback is not None and not loop.is_closed():
            loop.call_soon_threadsafe(callback, self.count)
            return
        raise Interrupted(signum)
