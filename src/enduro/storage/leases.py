"""Who holds a lease, and whether that process is still alive.

A lease (a thread's run, a webhook chain's sender) records its owner as `host:pid` and is
renewed by a heartbeat every `HEARTBEAT_SECONDS`. An owner is dead when its heartbeat is
older than `STALE_SECONDS`, on any machine, or at once when it ran on this machine and its
pid is gone (a `kill -9` shows without waiting for the lease to expire).
"""

from __future__ import annotations

import os
import socket
import time

from enduro.errors import ConfigError


def _lease_seconds() -> float:
    raw = os.environ.get("ENDURO_LEASE_SECONDS", "").strip()
    try:
        value = float(raw) if raw else 30.0
    except ValueError:
        value = -1.0
    if not 1.0 <= value <= 3600.0:
        raise ConfigError(
            f"ENDURO_LEASE_SECONDS={raw!r} is not a number of seconds between 1 and 3600; "
            "unset it for the default of 30"
        )
    return value


STALE_SECONDS = _lease_seconds()
"""A lease not renewed for this long belongs to a dead process, even on another machine.
ENDURO_LEASE_SECONDS (default 30); every process sharing a database must use the same
value: it is also how long a worker may be silent before its threads move elsewhere."""
HEARTBEAT_SECONDS = min(5.0, STALE_SECONDS / 6)
"""How often a lease holder renews its heartbeat."""


def this_owner() -> str:
    """This process as a lease owner: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None, heartbeat_at: float | None, now: float | None = None) -> bool:
    """Whether the process `owner` (`host:pid`) still holds its lease.

    Args:
        owner: The lease owner, or None when nobody holds it.
        heartbeat_at: The owner's last heartbeat (epoch seconds), or None.
        now: The time to judge at (epoch seconds); defaults to now.

    Returns:
        False when nobody holds the lease, its heartbeat is stale, or the owner ran on this
        machine and its pid no longer exists; True otherwise.
    """
    now = time.time() if now is None else now
    if owner is None or heartbeat_at is None or now - heartbeat_at > STALE_SECONDS:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True
