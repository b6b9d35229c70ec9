"""Logging for every process: one JSON object a line, ready for a log shipper."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any

import orjson

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the API request being served, or of the request that enqueued the job being
run: set by the API's request middleware and by the job wrapper, added to every log line."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (current := request_id.get()) is not None:
            entry["request_id"] = current
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for our loggers and the libraries'. arq's per-job lines are
    replaced by the lifecycle wrapper's own, which carry the job id and kind."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("arq", "arq.worker", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("arq.worker").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
