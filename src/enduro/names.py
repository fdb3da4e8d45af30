"""Thread names: what people call a thread (`nightly-report-7`).

Each is mapped to the UUID that LangGraph's Agent Server (`langgraph dev`, Studio) requires as a
thread id.

Invariants:
- A name maps to one UUID forever: `uuid5(THREAD_NAMESPACE, name)`. The same name gives the
  same thread on every machine and in every release, so a cron job can say
  `enduro resume nightly-report-7` without storing an id.
- The thread id is always that UUID (the status JSON's `thread_id`); the name is stored next
  to it (`name`) and shown, never used as an id.
- Every command accepts either: text that parses as a UUID is an id, anything else a name.

Standard library only.
"""

from __future__ import annotations

import re
import uuid

__all__ = ["THREAD_NAMESPACE", "ThreadRef", "parse_thread_ref", "thread_id_for_name"]

THREAD_NAMESPACE = uuid.UUID("5b0e4a47-5c1e-5d6b-9c1f-e6d0c0e1d2a7")
"""The uuid5 namespace of enduro thread names. Fixed: changing it would orphan every named
thread."""

MAX_NAME_CHARS = 200
_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


class ThreadRef:
    """A thread as a user wrote it: its id, and its name when one was given.

    Attributes:
        thread_id: the thread's UUID, as text (lower case, hyphenated).
        name: the name it was given by, or None when the text was a UUID.
    """

    __slots__ = ("name", "thread_id")

    def __init__(self, thread_id: str, name: str | None) -> None:
        self.thread_id = thread_id
        self.name = name

    def __repr__(self) -> str:
        return f"ThreadRef({self.thread_id!r}, name={self.name!r})"


def thread_id_for_name(name: str) -> str:
    """The thread id a name stands for: `uuid5(THREAD_NAMESPACE, name)` as text."""
    return str(uuid.uuid5(THREAD_NAMESPACE, name))


def parse_thread_ref(text: str) -> ThreadRef:
    """A thread id or name, as given on a command line or to `enduro.Client`.

    Args:
        text: a UUID (any case, with or without hyphens or braces) or a name.

    Returns:
        The thread's id, with the name when `text` was one.

    Raises:
        enduro.errors.ConfigError: `text` is empty, longer than 200 characters, or holds
            whitespace or control characters.
    """
    try:
        return ThreadRef(str(uuid.UUID(text)), None)
    except ValueError:
        pass
    if not text or len(text) > MAX_NAME_CHARS or _BAD.search(text):
        from enduro.errors import ConfigError

        raise ConfigError(
            f"thread name {text[:60]!r} is not usable: give a UUID, or a name of 1 to "
            f"{MAX_NAME_CHARS} characters without spaces or control characters "
            "(e.g. nightly-report-7)"
        )
    return ThreadRef(thread_id_for_name(text), text)
