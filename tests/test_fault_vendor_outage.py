"""Every vendor out for an hour, the hour compressed into seconds, then back.

Slack answers 429 with Retry-After, PagerDuty 429 without it (so the service's own backoff
decides), Datadog refuses connections. RESPONDER_RETRY_SCALE makes every wait before a
retry 360 times shorter, so the hour passes in ten seconds of a real `responder serve`
(web and worker in one process, so that /metrics shows the worker's retries too).
Afterwards every action has happened once, each retry is in the audit log and in the
metrics, nothing failed or was dropped, and the process never went down.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from responder.store.db import create_engine
from tests.backlog import settled
from tests.databases import restore
from tests.fakes.server import ANY
from tests.fraud_alerts import problems, recovered, triggered
from tests.load import send
from tests.processes import processes, service_env, wait_until
from tests.vendors import vendors

pytestmark = pytest.mark.slow

MONITORS = 8
HOUR = 3600.0
SCALE = 1 / 360  # an hour of waiting between retries passes in ten seconds
FOREVER = 1_000_000  # refusals queued: more than any number of attempts in the hour


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest) -> str:
    return restore(request, "sqlite")


def scalar(engine: sa.Engine, query: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(query)).scalar_one())


def fewest_attempts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        query = "SELECT action, min(attempts) FROM action_run GROUP BY action"
        return {action: n for action, n in conn.execute(sa.text(query)).all()}


def metric_total(url: str, name: str) -> float:
    """The sum of every sample of `name` in the service's /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def test_an_hour_of_every_vendor_down_ends_with_every_action_done_once(
    sqlite_url: str, tmp_path: Path
) -> None:
    with vendors() as fakes:
        env = service_env(sqlite_url, fakes, RESPONDER_RETRY_SCALE=str(SCALE))
        engine = create_engine(sqlite_url)
        with processes(env, tmp_path / "logs") as procs:
            service = procs.web(worker=True)
            fakes.slack.refuse_next(ANY, 429, retry_after="60", count=FOREVER)
            fakes.pagerduty.refuse_next(ANY, 429, count=FOREVER)
            fakes.datadog.down()
            sent = send(procs.url, [triggered(n) for n in range(MONITORS)], rate=20)
            assert sent.kinds() == {202: MONITORS}

            time.sleep(HOUR * SCALE)
            assert service.poll() is None, procs.log_tail()
            # An hour of attempts, every one refused, and nothing given up on.
            assert scalar(engine, "SELECT count(*) FROM action_run WHERE state = 'failed'") == 0
            attempts = fewest_attempts(engine)
            # Slack's Retry-After (a minute) and the backoff toward Datadog (capped at five
            # minutes) are compressed: a dozen attempts in the hour and more. PagerDuty's
            # pacing is not (one event a routing key every 0.55 s, the vendor's real limit):
            # the eight pages take turns, a few attempts each in these ten seconds.
            assert attempts["slack.post"] >= 12, attempts
            assert attempts["datadog.incident"] >= 12, attempts
            assert attempts["pagerduty.trigger"] >= 2, attempts
            retries = scalar(engine, "SELECT count(*) FROM audit_entry WHERE kind = 'run.retry'")
            assert metric_total(procs.url, "responder_action_retries_total") == retries

            fakes.slack.clear_faults()
            fakes.pagerduty.clear_faults()
            fakes.datadog.up()
            wait_until(lambda: settled(engine), 60, "every run to finish")
            assert problems(fakes, range(MONITORS), recovered=False) == []

            sent = send(procs.url, [recovered(n) for n in range(MONITORS)], rate=20)
            assert sent.kinds() == {202: MONITORS}
            wait_until(lambda: settled(engine), 60, "the recoveries")
            assert problems(fakes, range(MONITORS), recovered=True) == []
            states = "SELECT count(*) FROM action_run WHERE state <> 'succeeded'"
            assert scalar(engine, states) == 0
            assert service.poll() is None
            assert "Traceback" not in procs.log_text()
            engine.dispose()
            procs.audit_verified()
