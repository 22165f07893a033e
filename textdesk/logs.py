"""Structured JSON logs (one object per line), with PII redacted from messages."""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from typing import Any

from textdesk.redact import redact, redact_obj

__all__ = ["REQUEST_ID", "JsonFormatter", "configure_logging", "log_config"]

# Set per request by the web app's middleware; every log line of that request carries it.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# Not extras: the record's own fields.
_STD = set(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {"message", "asctime"}
_ANSI = "\x1b["  # terminal colour codes: uvicorn adds a coloured copy of its message as an extra
# uvicorn's loggers (start-up and errors, one line per request); they carry no handler of their own.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


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
        extra = {
            k: v
            for k, v in record.__dict__.items()
            if k not in _STD and not (isinstance(v, str) and _ANSI in v)
        }
        out.update(redact_obj(extra))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """The one logging set-up (``logging.config.dictConfig``), for the app and for uvicorn
    (``uvicorn.run(log_config=...)``): JSON lines on stderr from the root logger, and uvicorn's
    loggers, access lines included, propagating to it instead of printing plain text."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "textdesk.logs.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }


def configure_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(log_config(level))
