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
from typing import Any

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


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str) -> None:
    """Send every log line of the process to stderr in ``fmt`` (json or text), ours at ``level``.

    The handler sits on the root logger, so the libraries' loggers (httpx, litestar,
    asyncio, ...) write in the same format: a JSON log with a plain-text line in it
    breaks whatever parses it.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    ours = logging.getLogger("tailor")
    ours.handlers.clear()
    ours.setLevel(level)
    ours.propagate = True


def server_config(fmt: str) -> dict[str, Any] | None:
    """The web server's logging setup (granian's dictConfig) in ``fmt``; None keeps its own text format."""
    if fmt != "json":
        return None
    handler = {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"console": handler, "access": handler},
        "loggers": {
            "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
            "granian.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
