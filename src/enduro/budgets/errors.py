"""Why a run stops from inside a node: a limit that the next model call would pass, or a
provider answer that retrying cannot fix. Nodes raise these; the node wrapper turns them
into a state update (`status`, `stop_reason`) that routes the run to finish."""

from __future__ import annotations

from typing import Any


class RunStop(Exception):
    """Stop the run gracefully with `status` and `stop_reason` (never a crash)."""

    status: str = "failed"

    def __init__(self, stop_reason: str, *, status: str | None = None) -> None:
        super().__init__(stop_reason)
        self.stop_reason = stop_reason
        if status is not None:
            self.status = status

    def update(self) -> dict[str, Any]:
        return {"status": self.status, "stop_reason": self.stop_reason}


class BudgetStop(RunStop):
    """A limit would be passed: `stop_reason` is the limit's name (e.g. `max_usd`)."""

    status = "budget_exhausted"


class ProviderStop(RunStop):
    """The provider refused in a way retrying cannot fix (quota, key, context length), or
    kept refusing past the retry budget. `stop_reason` starts with a short code
    (`insufficient_quota: …`) and says what to fix."""


class PricingUnknown(RunStop):
    """A dollar limit is set but the model has no known price: fail closed."""
