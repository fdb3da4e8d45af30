"""Logging with the thread id on every line (`--log-format json` for machines)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

current_thread_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "enduro_thread_id", default="-"
)


class _ThreadIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.thread_id = current_thread_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: `ts` (UTC, ms), `level`, `logger`, `thread_id`, `msg`."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON, with the exception's traceback under `exc` if any."""
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread_id": getattr(record, "thread_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(fmt: str = "text", level: str = "WARNING") -> None:
    """Send every log record to stderr, each tagged with the thread id it concerns.

    Args:
        fmt: `text` (human-readable) or `json` (one object per line, for log shippers).
        level: a logging level name; httpx's per-request INFO lines stay off below WARNING.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ThreadIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(thread_id)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO, which would drown a long run's log.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
