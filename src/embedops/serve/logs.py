"""Structured JSON logs; every line carries the request id of the request it was written for."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from typing import Any

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("embedops_request_id", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
_STANDARD |= {"message", "asctime", "taskName", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extra fields, stack trace."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["stack"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def log_config(level: str = "info") -> dict[str, Any]:
    """A logging dictConfig (also handed to uvicorn) sending everything as JSON lines to stderr."""
    lvl = level.upper()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": "WARNING"},
        "loggers": {
            "embedops": {"level": lvl, "handlers": ["json"], "propagate": False},
            "uvicorn": {"level": lvl, "handlers": ["json"], "propagate": False},
            "uvicorn.error": {"level": lvl, "handlers": ["json"], "propagate": False},
            # our middleware writes the access line (with the request id); uvicorn's own would lack it
            "uvicorn.access": {"level": "WARNING", "handlers": ["json"], "propagate": False},
        },
    }
