"""All three vendor fakes at once, and a service configured to use them (lifecycle tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from responder.main import Service
from responder.settings import Settings
from responder.store.tables import ActionRun
from tests.fakes.datadog import FakeDatadog
from tests.fakes.pagerduty import API_TOKEN as PD_API_TOKEN
from tests.fakes.pagerduty import ROUTING_KEY, USER_EMAIL, FakePagerDuty
from tests.fakes.slack import FakeSlack
from tests.harness import SLACK_TOKEN, settings_for

CHANNELS = {
    "#payments-alerts": "C0PAYMENTS",
    "#security-alerts": "C0SECURITY",
    "#incidents": "C0INCIDENTS",
    "#platform-alerts": "C0PLATFORM",
    "#alerts-unrouted": "C0UNROUTED",
}
# payments.yaml pages through env:PAGERDUTY_PAYMENTS_KEY; the rest use the default key.
PAYMENTS_KEY = "PAYMENTSKEY000000000000000000002"
WORKFLOW_ID = "9c0e1f7a-3b7f-4c2d-8e1a-5f6b7c8d9e0f"  # checkout.yaml's scaling workflow
DD_API_KEY = "dd-api-secret-7f3a9c"
DD_APP_KEY = "dd-app-secret-1b2c3d"
SECRETS = (SLACK_TOKEN, ROUTING_KEY, PAYMENTS_KEY, PD_API_TOKEN, DD_API_KEY, DD_APP_KEY)
_RUNS = ActionRun.__table__  # type: ignore[attr-defined]


@dataclass
class Vendors:
    slack: FakeSlack
    pagerduty: FakePagerDuty
    datadog: FakeDatadog

    def settings(self, db_url: str, playbooks: Path | None = None, **extra: str) -> Settings:
        return settings_for(
            db_url,
            playbooks,
            SLACK_BOT_TOKEN=SLACK_TOKEN,
            RESPONDER_SLACK_API_URL=self.slack.base_url,
            PAGERDUTY_ROUTING_KEY=ROUTING_KEY,
            PAGERDUTY_API_TOKEN=PD_API_TOKEN,
            PAGERDUTY_FROM_EMAIL=USER_EMAIL,
            RESPONDER_PAGERDUTY_EVENTS_URL=self.pagerduty.events_url,
            RESPONDER_PAGERDUTY_API_URL=self.pagerduty.api_url,
            DD_API_KEY=DD_API_KEY,
            DD_APP_KEY=DD_APP_KEY,
            RESPONDER_DATADOG_API_URL=self.datadog.base_url,
            **extra,
        )


@contextmanager
def vendors() -> Iterator[Vendors]:
    with (
        FakeSlack(token=SLACK_TOKEN, channels=CHANNELS) as slack,
        FakePagerDuty(routing_keys=(ROUTING_KEY, PAYMENTS_KEY)) as pagerduty,
        FakeDatadog(api_key=DD_API_KEY, app_key=DD_APP_KEY, workflows={WORKFLOW_ID}) as datadog,
    ):
        yield Vendors(slack, pagerduty, datadog)


def settle(service: Service, timeout: float = 60.0) -> None:
    """Drain the worker until no run is left pending, pulling retries and polls forward.

    Backoff, Retry-After and workflow polls are real delays of seconds to minutes; a test
    compresses them by making every pending run due now between rounds.
    """
    assert service.worker is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.worker.drain(timeout=30), "the pipeline did not settle"
        with service.engine.begin() as conn:
            pending = conn.execute(
                sa.update(_RUNS)
                .where(_RUNS.c.state == "pending", _RUNS.c.scheduled_at <= datetime.now(UTC))
                .values(not_before=datetime.now(UTC) - timedelta(seconds=1))
                .returning(_RUNS.c.id)
            ).all()
        if not pending:
            return
    raise AssertionError("runs still pending after the time allowed")
