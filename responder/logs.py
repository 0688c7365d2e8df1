"""Logs in one format (JSON lines by default, readable text on request), structlog's and the
standard logging's alike (libraries, uvicorn), with known secrets masked in every line."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

from responder.redact import Redactor


class _Masked(logging.Filter):
    """Masks known secrets in the standard logging's lines (libraries log there), message
    and traceback alike, before any handler writes them."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self._redactor.redact_text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact_text(record.stack_info)
        return True


LOG_FORMATS = ("json", "text")


class _Lines(logging.Formatter):
    """The standard logging's records in the format of structlog's: the same keys in JSON,
    the same layout in text. The message and traceback were masked by `_Masked` already."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self._json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        level = record.levelname.lower()
        message = record.getMessage()
        if self._json:
            line: dict[str, Any] = {
                "event": message,
                "logger": record.name,
                "level": level,
                "timestamp": at.isoformat().replace("+00:00", "Z"),
            }
            if record.exc_text:
                line["exception"] = record.exc_text
            return json.dumps(line)  # as structlog's JSONRenderer writes its lines
        text = f"{at:%Y-%m-%dT%H:%M:%S.%fZ} [{level:<9}] {message}  logger={record.name}"
        return text + (f"\n{record.exc_text}" if record.exc_text else "")


def configure(level: str, redactor: Redactor, fmt: str = "json") -> None:
    """Set up both loggers for the process; `fmt` is "json" (default) or "text"."""

    def mask(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return redactor.redact(dict(event))  # type: ignore[no-any-return]

    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    for handler in logging.getLogger().handlers:
        # Configured again once the playbooks are loaded: their `env:` secrets join in.
        for old in [f for f in handler.filters if isinstance(f, _Masked)]:
            handler.removeFilter(old)
        handler.addFilter(_Masked(redactor))
        handler.setFormatter(_Lines(fmt))
    # Alembic narrates every plugin it loads at INFO: noise on each start and CLI command.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.root.level))
    # The pagerduty SDK logs ERROR on every 429/5xx it hands back ("exceeded maximum number
    # of attempts"): we make one attempt on purpose, and the runner logs the outcome itself.
    logging.getLogger("pagerduty").setLevel(logging.CRITICAL)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class Sparse:
    """A failure that repeats with every request, logged at most once per `every` seconds
    with the count of the ones left out meanwhile (`repeated`): a database outage under a
    thousand webhooks a second is a line every few seconds, not a thousand a second."""

    def __init__(self, logger: Any, every: float = 5.0) -> None:
        self._log = logger
        self._every = every
        self._seen: dict[str, tuple[float, int]] = {}  # event: (last logged, left out since)

    def __call__(self, level: str, event: str, **fields: Any) -> None:
        now = time.monotonic()
        last, left_out = self._seen.get(event, (float("-inf"), 0))
        if now - last < self._every:
            self._seen[event] = (last, left_out + 1)
            return
        self._seen[event] = (now, 0)
        getattr(self._log, level)(event, repeated=left_out, **fields)
