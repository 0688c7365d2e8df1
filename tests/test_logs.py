"""The service's logging masks known secrets in every line: structlog's own and the
standard logging's, where libraries write (messages, arguments and tracebacks)."""

from __future__ import annotations

import base64
import logging

import pytest
import structlog

from responder.logs import configure
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
