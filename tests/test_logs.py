"""The service's logging masks known secrets in every line: structlog's own and the
standard logging's, where libraries write (messages, arguments and tracebacks)."""

from __future__ import annotations

import base64
import logging
import time

import pytest
import structlog

from responder.logs import Sparse, configure
from responder.redact import REDACTED, Redactor
from tests.logstate import logging_kept

SECRET = "lib-secret-Hq7Zt2Wm9Kx4"


def test_every_log_line_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    encoded = base64.b64encode(f"user:{SECRET}".encode()).decode()
    with logging_kept():
        logging.getLogger().handlers.clear()  # as in production: basicConfig's handler only
        configure("debug", Redactor([SECRET]))
        library = logging.getLogger("some.library")
        library.debug("sending Authorization: Basic %s", encoded)
        library.warning("retrying with %s", SECRET)
        try:
            raise ValueError(f"refused key {SECRET}")
        except ValueError:
            library.exception("call failed")
        library.info("where", stack_info=True, extra={"unused": SECRET})
        structlog.get_logger("responder").info("run.failed", error=f"echo {SECRET}", token="x")
        configure("debug", Redactor([SECRET, "second-secret-Pq3"]))  # after playbooks load
        library.warning("and %s", "second-secret-Pq3")
    err = capsys.readouterr().err
    assert SECRET not in err and "second-secret" not in err
    assert SECRET[:8] not in err and encoded[8:16] not in err
    assert err.count(REDACTED) >= 5, err
    assert "ValueError: refused key [REDACTED]" in err  # the traceback kept, masked
    assert err.count("and [REDACTED]") == 1  # one handler, one mask: not stacked twice


class _Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append(("warning", event, fields))

    def error(self, event: str, **fields: object) -> None:
        self.lines.append(("error", event, fields))


def test_a_failure_on_every_request_is_logged_now_and_then_with_a_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    lines = _Lines()
    sparse = Sparse(lines, every=5.0)
    for _ in range(1000):  # a second of webhooks while the database is down
        sparse("warning", "webhook.store_failed", error="OperationalError")
        now[0] += 0.001
    sparse("error", "webhook.disk_full", error="full")  # another failure: a line of its own
    now[0] += 5.0
    sparse("warning", "webhook.store_failed", error="OperationalError")
    assert lines.lines == [
        ("warning", "webhook.store_failed", {"repeated": 0, "error": "OperationalError"}),
        ("error", "webhook.disk_full", {"repeated": 0, "error": "full"}),
        ("warning", "webhook.store_failed", {"repeated": 999, "error": "OperationalError"}),
    ]
