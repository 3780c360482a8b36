"""Logging: JSON lines carrying the decision id, configured once per process.

The decision id of the request being served sits in a context variable, so any log
line written while serving it (a model that fails, a problem mapped to a 500) carries
it without passing it around. Log lines never carry visitor attributes or ids.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from datetime import UTC, datetime

import msgspec

decision_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("decision_id", default=None)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, decision_id, and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = decision_id.get()
        if current is not None:
            entry["decision_id"] = current
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


def configure(level: str, fmt: str) -> None:
    """Send the ``tailor`` loggers to stderr in ``fmt`` (json or text) at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("tailor")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
