"""Shared by the tests of people's answers from PagerDuty and Slack: an open incident to
answer about, and what the database holds afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from starlette.testclient import TestClient

from responder.main import Service
from responder.store import incidents
from responder.store.db import transaction
from tests.harness import drain, post, sample


@dataclass(frozen=True, slots=True)
class Stored:
    events: int  # alert_event rows
    audit: int  # audit_entry rows


def open_incident(
    service: Service,
    client: TestClient,
    samples_dir: Path,
    name: str = "payment-failure-rate.triggered",
) -> int:
    """An incident opened by a Datadog delivery, through the pipeline."""
    response = post(client, sample(samples_dir, name))
    assert response.status_code == 202, response.text
    drain(service)
    with service.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT max(id) FROM incident")).scalar_one()
    assert found is not None
    return int(found)


def name_incident(service: Service, incident_id: int, kind: str, value: str) -> None:
    """How a vendor names the incident, as the PagerDuty trigger's run records it."""
    with transaction(service.engine) as conn:
        incidents.add_refs(
            conn, incident_id=incident_id, names={kind: value}, now=datetime.now(UTC)
        )


def stored(service: Service) -> Stored:
    with service.engine.connect() as conn:
        events = conn.execute(sa.text("SELECT count(*) FROM alert_event")).scalar_one()
        audit = conn.execute(sa.text("SELECT count(*) FROM audit_entry")).scalar_one()
    return Stored(int(events), int(audit))


def answers(service: Service) -> list[dict[str, Any]]:
    """The answer events stored, oldest first: their fingerprint and their payload."""
    query = sa.text(
        "SELECT fingerprint, payload FROM alert_event WHERE fingerprint LIKE 'answer:%' ORDER BY id"
    )
    with service.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"fingerprint": row[0], **orjson.loads(row[1])} for row in rows]
