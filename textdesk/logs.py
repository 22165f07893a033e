"""Structured JSON logs (one object per line), with PII redacted from messages."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any

from textdesk.redact import redact, redact_obj

__all__ = ["REQUEST_ID", "configure_logging"]

# Set per request by the web app's middleware; every log line of that request carries it.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

_STD = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        if (rid := REQUEST_ID.get()) is not None:
            out["request_id"] = rid
        extra = {k: v for k, v in record.__dict__.items() if k not in _STD}
        out.update(redact_obj(extra))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
