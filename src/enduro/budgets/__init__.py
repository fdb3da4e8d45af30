"""Budget decisions: the guard asks `decide` whether another iteration may start."""

from enduro.budgets.decision import Decision, decide

__all__ = ["Decision", "decide"]
