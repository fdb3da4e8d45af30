"""The retry schedule: exponential backoff with jitter, Retry-After, and when to give up.

Attempt 1 goes out at once. After a failed attempt n, the next one waits `schedule[n-1]`
seconds times a random factor in [1 - jitter, 1 + jitter] (so threads retrying one receiver
that comes back do not arrive in lockstep), unless the receiver sent `Retry-After`, which
is obeyed instead (capped at MAX_RETRY_AFTER). An event is dead after its last scheduled
attempt fails, or after any failed attempt once it is older than the whole schedule: a
backlog left by a long outage then costs one request per event instead of a full schedule
each, while every event still gets at least one attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# 5 s, 20 s, 80 s, 5 m 20 s, 21 m 20 s, 1 h 25 m, then 6 h four times: 11 attempts over
# about 26 hours, enough to ride out an overnight outage of the receiver.
DEFAULT_SCHEDULE: tuple[float, ...] = (
    5.0,
    20.0,
    80.0,
    320.0,
    1280.0,
    5120.0,
    21600.0,
    21600.0,
    21600.0,
    21600.0,
)
MAX_RETRY_AFTER = 3600.0


@dataclass
class RetryPolicy:
    """When a failed delivery is tried again, and when an event is given up (dead).

    The n-th retry waits `schedule[n-1]` seconds times a random factor in [1 - jitter,
    1 + jitter], or the receiver's Retry-After (capped at `MAX_RETRY_AFTER`) when it gives
    one.
    """

    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    max_age_seconds: float | None = None
    """Age after which a failed attempt is an event's last; None: the schedule's length."""
    rng: random.Random = field(default_factory=random.Random)

    @property
    def max_attempts(self) -> int:
        """Attempts before an event is dead: the first one plus one per schedule entry."""
        return len(self.schedule) + 1

    @property
    def max_age(self) -> float:
        """Seconds from an event's creation after which a failed attempt is its last."""
        return self.max_age_seconds if self.max_age_seconds is not None else sum(self.schedule)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds to wait after `attempts` failed attempts."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        base = self.schedule[min(attempts, len(self.schedule)) - 1]
        return base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)

    def is_dead(self, attempts: int, age: float) -> bool:
        """Whether an event `age` seconds old that failed `attempts` times is given up."""
        return attempts >= self.max_attempts or age >= self.max_age
